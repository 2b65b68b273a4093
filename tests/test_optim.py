"""Optimizers: the first two updates against their formulas, many steps against PyTorch,
decay and schedules, subnormal flushing, state round trip, argument errors."""

import json

import numpy as np
import pytest

import barenet as bn
from barenet import optim, parallel

P0 = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.1, -0.3, 0.2])
G2 = np.array([-0.2, 0.1, 0.4])


def two_steps(opt):
    p = P0.copy()
    opt.step([p], [G1.copy()])
    first = p.copy()
    opt.step([p], [G2.copy()])
    return first, p


def test_sgd_plain():
    first, second = two_steps(bn.SGD(lr=0.1))
    np.testing.assert_allclose(first, P0 - 0.1 * G1)
    np.testing.assert_allclose(second, P0 - 0.1 * G1 - 0.1 * G2)


def test_sgd_momentum_and_nesterov():
    first, second = two_steps(bn.SGD(lr=0.1, momentum=0.9))
    v1 = G1
    v2 = 0.9 * v1 + G2
    np.testing.assert_allclose(first, P0 - 0.1 * v1)
    np.testing.assert_allclose(second, P0 - 0.1 * v1 - 0.1 * v2)
    first, second = two_steps(bn.SGD(lr=0.1, momentum=0.9, nesterov=True))
    np.testing.assert_allclose(first, P0 - 0.1 * (G1 + 0.9 * v1))
    np.testing.assert_allclose(second, first - 0.1 * (G2 + 0.9 * v2))


def test_adagrad():
    first, second = two_steps(bn.Adagrad(lr=0.1))
    s1, s2 = G1**2, G1**2 + G2**2
    np.testing.assert_allclose(first, P0 - 0.1 * G1 / (np.sqrt(s1) + 1e-10))
    np.testing.assert_allclose(second, first - 0.1 * G2 / (np.sqrt(s2) + 1e-10))


def test_rmsprop():
    first, second = two_steps(bn.RMSprop(lr=0.01, alpha=0.9))
    v1 = 0.1 * G1**2
    v2 = 0.9 * v1 + 0.1 * G2**2
    np.testing.assert_allclose(first, P0 - 0.01 * G1 / (np.sqrt(v1) + 1e-8))
    np.testing.assert_allclose(second, first - 0.01 * G2 / (np.sqrt(v2) + 1e-8))


def test_adam():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    first, second = two_steps(bn.Adam(lr=lr))
    m1, v1 = (1 - b1) * G1, (1 - b2) * G1**2
    m2, v2 = b1 * m1 + (1 - b1) * G2, b2 * v1 + (1 - b2) * G2**2
    # bias-corrected: m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
    # step = m_hat / (sqrt(v_hat) + eps)
    step1 = (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    step2 = (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    np.testing.assert_allclose(first, P0 - lr * step1)
    np.testing.assert_allclose(second, first - lr * step2)
    # The first Adam step moves every weight by about lr, whatever the gradient's size.
    np.testing.assert_allclose(np.abs(first - P0), lr, rtol=1e-5)


def test_adamw_decouples_weight_decay():
    lr, wd = 0.01, 0.1
    first, _ = two_steps(bn.AdamW(lr=lr, weight_decay=wd))
    adam_first, _ = two_steps(bn.Adam(lr=lr))
    np.testing.assert_allclose(first, P0 * (1 - lr * wd) + (adam_first - P0))


def test_decay_is_lr_over_one_plus_decay_t():
    opt = bn.SGD(lr=1.0, decay=0.5)
    p = np.zeros(1)
    seen = []
    for _ in range(4):
        seen.append(opt.current_lr)
        opt.step([p], [np.ones(1)])
    np.testing.assert_allclose(seen, [1 / (1 + 0.5 * t) for t in range(4)])
    np.testing.assert_allclose(p, -sum(seen))


TORCH_CASES = [
    ("SGD", dict(lr=0.1), dict(lr=0.1)),
    (
        "SGD",
        dict(lr=0.1, momentum=0.9, weight_decay=0.01),
        dict(lr=0.1, momentum=0.9, weight_decay=0.01),
    ),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("Adagrad", dict(lr=0.1), dict(lr=0.1, eps=1e-10)),
    ("RMSprop", dict(lr=0.01), dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.01), dict(lr=0.01, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.05), dict(lr=0.01, weight_decay=0.05)),
]


@pytest.mark.parametrize("name,ours,theirs", TORCH_CASES)
def test_twenty_steps_match_torch(name, ours, theirs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = rng.standard_normal((4, 5))
    tp = torch.tensor(p.copy(), requires_grad=True)
    opt, topt = getattr(bn, name)(**ours), getattr(torch.optim, name)([tp], **theirs)
    for _ in range(20):
        g = rng.standard_normal((4, 5))
        opt.step([p], [g.copy()])
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_schedules():
    assert bn.InverseTimeDecay(1.0, 0.1)(10) == pytest.approx(0.5)
    assert bn.StepDecay(1.0, step_size=10, gamma=0.5)(25) == pytest.approx(0.25)
    assert bn.ExponentialDecay(1.0, gamma=0.9)(2) == pytest.approx(0.81)
    cos = bn.CosineDecay(1.0, total_steps=100, min_lr=0.1)
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.55)
    assert cos(100) == pytest.approx(0.1) and cos(500) == pytest.approx(0.1)
    warm = bn.WarmUp(cos, warmup_steps=4)
    assert [warm(t) for t in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert warm(54) == pytest.approx(0.55)
    rebuilt = bn.schedules.from_config(bn.schedules.to_config(warm))
    assert [rebuilt(t) for t in (0, 10, 200)] == [warm(t) for t in (0, 10, 200)]


def test_optimizer_uses_a_schedule_as_lr():
    opt = bn.SGD(lr=bn.StepDecay(1.0, step_size=2, gamma=0.1))
    p = np.zeros(1)
    for _ in range(4):
        opt.step([p], [np.ones(1)])
    np.testing.assert_allclose(p, -(1 + 1 + 0.1 + 0.1))


def test_subnormal_moments_are_flushed():
    opt = bn.Adam(lr=1e-3)
    p = np.ones(4, dtype=np.float32)
    g = np.array([1e-3, 0, 0, 1e-3], dtype=np.float32)
    opt.step([p], [g])
    opt.state[0]["m_scaled"][1:3] = 1e-37  # would decay into subnormals with zero gradients
    opt.state[0]["v_scaled"][1:3] = 1e-36
    zero = np.zeros(4, dtype=np.float32)
    for _ in range(optim.FLUSH_EVERY):
        opt.step([p], [zero])
    tiny = np.finfo(np.float32).tiny
    for a in opt.state[0].values():
        assert not np.any((a != 0) & (np.abs(a) < tiny)), a
        assert a[0] != 0 or a[3] != 0


def test_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(6)]
    a, pa = bn.Adam(lr=0.01), P0.copy()
    for g in grads:
        a.step([pa], [g])
    b, pb = bn.Adam(lr=0.01), P0.copy()
    for g in grads[:3]:
        b.step([pb], [g])
    c = bn.Adam(lr=0.01)
    c.load_state_dict({k: v.copy() for k, v in b.state_dict().items()})
    for g in grads[3:]:
        c.step([pb], [g])
    assert np.array_equal(pa, pb)


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: bn.SGD(lr=-1), "lr"),
        (lambda: bn.Adam(lr=float("nan")), "lr"),
        (lambda: bn.SGD(lr=0.1, momentum=1.5), "momentum"),
        (lambda: bn.SGD(lr=0.1, nesterov=True), "nesterov"),
        (lambda: bn.Adam(betas=(0.9, 1.0)), "betas"),
        (lambda: bn.Adam(eps=0), "eps"),
        (lambda: bn.RMSprop(decay=-0.1), "decay"),
        (lambda: bn.optim.get("lbfgs"), "optimizer"),
        (lambda: bn.CosineDecay(0.1, total_steps=0), "total_steps"),
    ],
)
def test_bad_optimizer_arguments(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_large_buffers_updated_in_parts_give_identical_results(name):
    """Big flat buffers are updated as parts on threads; the result must not change."""
    rng = np.random.default_rng(0)
    n = 5001
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    kwargs = {"lr": 0.01, "momentum": 0.9} if name == "SGD" else {"lr": 0.01}
    results, counts = [], []
    for minimum, workers in ((10**9, 1), (1000, 3)):
        previous = parallel.configure(workers, min_size=minimum)
        try:
            p, opt = p0.copy(), getattr(bn, name)(**kwargs)
            opt.update = lambda p, *a, rule=opt.update: counts.append(len(p)) or rule(p, *a)
            with parallel.blas_on_one_thread():  # the pool only splits work in such a block
                for g in grads:
                    opt.step([p], [g])
        finally:
            parallel.configure(**previous)
        results.append(p)
    assert counts == [n] * len(grads) + [n // 3] * 3 * len(grads)  # 5001: 3 parts of 1667
    assert np.array_equal(results[0], results[1])


def test_schedules_take_numpy_step_counts():
    """A step count computed with NumPy (``len(x) // batch * epochs``) is an int too, and
    the saved config stays plain JSON."""
    steps = np.int64(6400) // 128 * 3
    for schedule in (
        bn.CosineDecay(0.1, total_steps=steps),
        bn.StepDecay(0.1, step_size=steps),
        bn.WarmUp(0.1, warmup_steps=steps),
    ):
        config = schedule.get_config()
        assert json.loads(json.dumps(config)) == config
        assert 150 in config.values()
