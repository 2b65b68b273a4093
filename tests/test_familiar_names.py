"""Names a Keras or PyTorch user types work where barenet has the feature, or the error
says which name to use."""

from __future__ import annotations

import numpy as np
import pytest

import barenet as bn


def tiny(seed: int = 0) -> bn.Sequential:
    model = bn.Sequential([bn.Dense(2, 8), bn.ReLU(), bn.Dense(8, 2)], seed=seed)
    model.compile(loss="cross_entropy", optimizer=bn.SGD(lr=0.1), metrics=["accuracy"])
    return model


X = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)


def test_restore_best_weights_is_restore_best():
    assert bn.EarlyStopping(restore_best_weights=False).restore_best is False
    assert bn.EarlyStopping(restore_best_weights=True).restore_best is True
    assert bn.EarlyStopping().restore_best is True  # barenet's default stays
    assert bn.EarlyStopping(restore_best=True, restore_best_weights=True).restore_best
    with pytest.raises(bn.ArgumentError, match="another name for restore_best"):
        bn.EarlyStopping(restore_best=True, restore_best_weights=False)


def test_early_stopping_takes_keras_keywords():
    stop = bn.EarlyStopping(monitor="loss", min_delta=1e9, patience=1, mode="min")
    tiny().fit(X, Y, epochs=10, batch_size=16, seed=0, verbose=0, callbacks=[stop])
    # the first epoch sets the best; nothing improves on it by 1e9, so patience 1 ends at 2
    assert stop.stopped_epoch == 2 and stop.best_epoch == 0
    with pytest.raises(bn.ArgumentError, match="patience must be an integer >= 0"):
        bn.EarlyStopping(patience=-1)


def test_model_checkpoint_is_checkpoint(tmp_path):
    saver = bn.ModelCheckpoint(filepath=tmp_path / "m-{epoch}.npz", monitor="loss")
    assert isinstance(saver, bn.callbacks.Checkpoint)
    tiny().fit(X, Y, epochs=2, batch_size=16, seed=0, verbose=0, callbacks=[saver])
    assert [p.rsplit("/", 1)[1] for p in saver.saved] == ["m-1.npz", "m-2.npz"]
    assert bn.load_model(saver.saved[-1]).optimizer is not None


def test_fit_takes_validation_data_and_shuffle():
    a, b = tiny(), tiny()
    ha = a.fit(X, Y, epochs=2, batch_size=8, shuffle=False, seed=1, verbose=0)
    b.fit(X, Y, epochs=2, batch_size=8, shuffle=False, seed=2, verbose=0)
    # without shuffling (and no dropout) the seed changes nothing
    np.testing.assert_array_equal(a.get_weights(), b.get_weights())
    h = tiny().fit(X, Y, epochs=1, batch_size=8, validation_data=(X[:8], Y[:8]), verbose=0)
    assert "val_accuracy" in h.history and "val_loss" not in ha.history


def test_count_params_and_optimizer_names_in_any_case():
    model = tiny()
    assert model.count_params() == model.num_params == 2 * 8 + 8 + 8 * 2 + 2
    model.compile(loss="cross_entropy", optimizer="SGD")
    assert type(model.optimizer).__name__ == "SGD"
    model.compile(loss="cross_entropy", optimizer="AdamW")
    assert type(model.optimizer).__name__ == "AdamW"


def test_dense_units_and_a_lone_width():
    assert bn.Dense(784, units=128).out_features == 128
    with pytest.raises(
        bn.ArgumentError, match=r"e\.g\. Dense\(784, 128\).*Dense\(in_features, units"
    ):
        bn.Dense(128)
    with pytest.raises(bn.ArgumentError, match="units is another name for out_features"):
        bn.Dense(784, 128, units=64)


@pytest.mark.parametrize("cls", [bn.SGD, bn.Adagrad, bn.RMSprop, bn.Adam, bn.AdamW])
def test_optimizers_take_learning_rate_as_keras_spells_it(cls):
    assert cls(learning_rate=0.02).lr == cls(lr=0.02).lr == 0.02
    with pytest.raises(bn.ArgumentError, match="give lr or learning_rate"):
        cls(0.1, learning_rate=0.2)
    with pytest.raises(bn.ArgumentError, match="lr must be"):
        cls(learning_rate=-1.0)
