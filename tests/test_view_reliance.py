"""experiments.view_reliance: the replacement of the other views and the split of one view's errors (the
tool's runs are training runs: experiments/LOG.md holds them)."""
import types

import numpy as np

from experiments import view_reliance


class Recorder:
    def predict_on_batch(self, inputs):
        self.seen = inputs
        return {"kp2d": np.zeros(1)}


def test_other_views_come_from_the_donors_in_turn_and_the_kept_view_stays():
    """Planted faults: the kept view replaced too, the same donor batch every call, the caller's
    images edited in place."""
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4, 1, 1, 1) * np.ones((1, 1, 2, 2, 3), np.uint8)
    inputs = {"images": images, "P": np.arange(6 * 4 * 12, dtype=np.float32).reshape(6, 4, 3, 4)}
    original = images.copy()
    donors = [np.full((4, 4, 2, 2, 3), 100 + batch, np.uint8) + np.arange(4, dtype=np.uint8)[:, None, None, None, None]
              for batch in range(2)]
    recorder = Recorder()
    replaced = view_reliance.OtherViewsReplaced(recorder, kept_view=2, donors=donors)
    for call in range(3):
        replaced.predict_on_batch(inputs)
        fed = recorder.seen["images"]
        np.testing.assert_array_equal(fed[:, 2], images[:, 2])
        for sample in range(6):  # donor batch call % 2, its row sample % 4
            assert (fed[sample, [0, 1, 3]] == 100 + call % 2 + sample % 4).all()
    np.testing.assert_array_equal(images, original)
    assert recorder.seen["P"] is inputs["P"]


def test_view_errors_split_one_views_joints_by_visibility():
    """View 1 sees joint 0 (error 3 px) and not joint 1 (error 4 px); view 0's errors (and a joint
    outside view 1's crop, counted hidden) must land where they belong."""
    true = np.full((1, 2, 3, 2), 10.0)
    true[0, 1, 2] = [-5.0, 10.0]                             # joint 2 outside view 1's 64 px crop
    predicted = true.copy()
    predicted[0, 1, 0] += [3.0, 0.0]
    predicted[0, 1, 1] += [0.0, 4.0]
    predicted[0, 1, 2] += [6.0, 8.0]
    predicted[0, 0] += 100.0                                 # view 0: not view 1's business
    visible = np.array([[[1, 1, 1], [1, 0, 1]]], float)
    predictions = types.SimpleNamespace(kp2d_pred=predicted, kp2d_true=true, visible=visible)
    assert view_reliance.view_errors(predictions, 64, view=1) == {"visible": 3.0, "hidden": 7.0}


def test_table_gives_the_rise_per_group():
    seeds = [{"as_is": {"visible": 3.0, "hidden": 5.0}, "replaced": {"visible": 3.5, "hidden": 7.0}},
             {"as_is": {"visible": 4.0, "hidden": 5.0}, "replaced": {"visible": 4.5, "hidden": 8.0}}]
    table = view_reliance.format_table({"skip": seeds})
    assert "| skip | 3.50 +- 0.50 | 4.00 +- 0.50 | 0.50 +- 0.00 | 5.00 +- 0.00 | 7.50 +- 0.50 | 2.50 +- 0.50 |" in table
