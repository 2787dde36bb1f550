"""The progress line: every 10% in a log (stdout not a terminal), nothing when disabled, a closing summary."""
from common import progress


def test_a_log_gets_a_line_every_tenth_and_a_summary(capsys):
    bar = progress.ProgressBar(20, "frames")
    for _ in range(20):
        bar.advance()
    bar.finish()
    lines = capsys.readouterr().out.splitlines()
    counts = [int(line.split(":")[1].split("/")[0]) for line in lines]
    # About one line per tenth (float steps of 0.1 may skip one), in order, the first at 10%.
    assert 8 <= len(lines) <= 10 and counts == sorted(counts) and counts[0] == 2
    assert bar.summary().startswith("frames: 20 in ")


def test_disabled_prints_nothing_but_counts(capsys):
    bar = progress.ProgressBar(5, "frames", enabled=False)
    bar.advance(5)
    bar.finish()
    assert capsys.readouterr().out == ""
    assert bar.done == 5
