"""The 3D term's weight schedule (losses.ramp_weight, losses.Loss3DWeight): 0 for exactly the
warm-up, then the ramp, counted in optimizer steps across epochs and fit calls (a resumed run)."""
import keras
import numpy as np

from toy_models import constant_data, toy_model
from train import losses


def test_the_3d_weight_is_0_for_exactly_the_warmup_steps_with_and_without_a_ramp():
    """Guards the warm-up's boundary: with --ramp-3d-steps 0 (the default) the 3D term switches on at
    step ``warmup`` exactly (a warm-up one step short is invisible with a ramp, whose first value is
    0 anyway, and is caught here); with a ramp it rises by final / ramp per step."""
    no_ramp = [losses.ramp_weight(step, 0.5, warmup_steps=3, ramp_steps=0) for step in range(6)]
    np.testing.assert_allclose(no_ramp, [0, 0, 0, 0.5, 0.5, 0.5])
    ramp = [losses.ramp_weight(step, 0.5, warmup_steps=3, ramp_steps=4) for step in range(9)]
    np.testing.assert_allclose(ramp, [0, 0, 0, 0.125, 0.25, 0.375, 0.5, 0.5, 0.5])
    np.testing.assert_allclose([losses.ramp_weight(s, 2.0, 0, 0) for s in range(3)], [2.0] * 3)


class RecordWeight(keras.callbacks.Callback):
    def __init__(self, variable):
        super().__init__()
        self.variable, self.seen = variable, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(float(keras.ops.convert_to_numpy(self.variable)))


def test_the_3d_weight_follows_the_optimizer_step_across_epochs_and_fit_calls():
    """Guards the schedule's clock: the weight each batch trains with is ramp_weight(optimizer step),
    through epochs (a clock of the batch in the epoch restarts the warm-up every epoch) and through a
    second fit call (a resumed run continues the schedule, it does not start it again); a weight
    never assigned stays at its start value and fails here too."""
    model = toy_model()
    schedule = losses.Loss3DWeight(1.0, warmup_steps=4, ramp_steps=4)
    record = RecordWeight(schedule.variable)
    model.fit(constant_data(), epochs=2, steps_per_epoch=3, verbose=0, callbacks=[schedule, record])
    model.fit(constant_data(), initial_epoch=2, epochs=3, steps_per_epoch=3, verbose=0, callbacks=[schedule, record])
    expected = [losses.ramp_weight(step, 1.0, 4, 4) for step in range(9)]
    np.testing.assert_allclose(record.seen, expected)
    assert expected[-1] == 1.0 and expected[3] == 0.0  # the run crosses the warm-up and the whole ramp
