"""Issue 9's audit of the GPU path: one test per finding, each failing before its fix (on the CuPy
stand-in, which refuses and counts what CuPy does; see tests/cupy_standin)."""
import numpy as np
import pytest

import minidl
from minidl import amp, backends, nn, optim
from minidl.backends.cuda import loss as xent, optim as fused_optim, pooling
from minidl.nn import functional as F


# ----------------------------------------------------------------------- Pow.backward used xp.errstate
def test_pow_backward_runs_on_cuda(standin):
    x = minidl.tensor(np.array([0.0, 1.5, 2.0])).to("cuda").requires_grad_()
    (x ** 3 + 2.0 ** x).sum().backward()  # CuPy has no errstate: AttributeError before the fix
    np.testing.assert_allclose(x.grad.cpu().array, 3 * np.array([0.0, 1.5, 2.0]) ** 2
                               + np.log(2) * 2.0 ** np.array([0.0, 1.5, 2.0]))


# ----------------------------------------------------------------------- bool(xp.all(valid)) per loss call
@pytest.mark.parametrize("reference", [False, True])
def test_cross_entropy_and_nll_loss_wait_for_nothing_on_cuda(standin, reference):
    logits = minidl.randn(6, 4).to("cuda").requires_grad_()
    target = minidl.tensor(np.array([0, 1, 2, 3, -100, 1])).to("cuda")
    standin.counts.reset()
    with backends.reference(reference):
        loss = F.cross_entropy(logits, target, label_smoothing=0.1) + F.nll_loss(F.log_softmax(logits, 1), target)
        loss.backward()
    assert standin.counts.syncs == 0, standin.counts.sites


@pytest.mark.parametrize("reference", [False, True])
def test_an_out_of_range_target_on_cuda_gives_nan_not_a_wrong_loss(standin, reference):
    logits = minidl.randn(3, 4).to("cuda").requires_grad_()
    with backends.reference(reference):
        loss = F.cross_entropy(logits, minidl.tensor(np.array([1, 7, 2])).to("cuda"), reduction="none")
        loss.sum().backward()
    values, grad = loss.detach().cpu().array, logits.grad.cpu().array
    assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()
    assert np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()
    with pytest.raises(IndexError, match="target 7 is out of bounds for 4 classes"):  # on the CPU: checked
        F.cross_entropy(logits.detach().cpu(), minidl.tensor(np.array([1, 7, 2])))


# ----------------------------------------------------------------------- loss.item() and int() per batch in the trainer
def test_a_trainer_epoch_on_cuda_reads_the_device_once_per_check(standin):
    from minidl.data import DataLoader
    from minidl.train import Trainer
    from tests.test_trainer import pattern_data, small_cnn
    minidl.manual_seed(0)
    model = small_cnn().to("cuda")
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(model, optimizer, device="cuda", progress=False, check_every=100)  # no check within the epoch
    train = DataLoader(pattern_data(64, seed=1), batch_size=8, device="cuda")  # 8 batches
    val = DataLoader(pattern_data(16, seed=2), batch_size=8, device="cuda")
    standin.counts.reset()
    history = trainer.fit(train, epochs=1, val_loader=val)
    # the epoch's divergence checks, its loss/accuracy totals, the validation totals: 3 reads, not 3 per batch
    assert standin.counts.syncs == 3, standin.counts.sites
    assert 0 <= history.rows[0]["train_top1"] <= 1 and np.isfinite(history.rows[0]["val_loss"])


def test_a_diverged_loss_on_cuda_is_reported_at_its_batch(standin):
    from minidl.data import DataLoader
    from minidl.train import Trainer, TrainingDiverged
    from tests.test_trainer import pattern_data, small_cnn
    model = small_cnn().to("cuda")
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=1e30), device="cuda", progress=False, check_every=100)
    with pytest.raises(TrainingDiverged, match=r"became (nan|inf).* at epoch 1, batch [2-9]"):
        trainer.fit(DataLoader(pattern_data(64, seed=1), batch_size=8, device="cuda"), epochs=1)


# ----------------------------------------------------------------------- GradScaler.unscale_: a copy and a sync per parameter
def test_grad_scaler_copies_nothing_to_the_device_and_reads_back_once(standin):
    params = [minidl.randn(3, 4).to("cuda").requires_grad_() for _ in range(5)]
    for p in params:
        p.grad = minidl.randn(3, 4).to("cuda")
    optimizer = optim.SGD(params, lr=0.1)
    scaler = amp.GradScaler()
    standin.counts.reset()
    scaler.unscale_(optimizer)
    assert (standin.counts.host_to_device, standin.counts.syncs) == (0, 0), standin.counts.sites
    scaler.step(optimizer)
    scaler.update()
    assert standin.counts.syncs == 1 and standin.counts.host_to_device == 0, standin.counts.sites


# ----------------------------------------------------------------------- int() per BatchNorm layer with momentum=None
def test_batch_norm_with_momentum_none_reads_nothing_back(standin):
    layer = nn.BatchNorm2d(3, momentum=None).to("cuda")
    x = minidl.randn(4, 3, 2, 2).to("cuda")
    standin.counts.reset()
    layer(x), layer(x)
    assert standin.counts.syncs == 0, standin.counts.sites


# ----------------------------------------------------------------------- a CuPy generator built per dropout forward
@pytest.mark.parametrize("reference", [False, True])
def test_dropout_builds_no_generator_per_call(standin, monkeypatch, reference):
    built = []
    default_rng = standin.cupy.random.default_rng
    monkeypatch.setattr(standin.cupy.random, "default_rng", lambda seed=None: built.append(seed) or default_rng(seed))
    x = minidl.ones(16, 16).to("cuda")
    with backends.reference(reference):
        masks = [F.dropout(x, 0.5).cpu().array for _ in range(3)]
    assert len(built) == (1 if reference else 0)  # the generic path keeps one per device; the kernels need none
    assert not np.array_equal(masks[0], masks[1])


# ----------------------------------------------------------------------- softmax_cross_entropy.cu read out of bounds
def test_the_cross_entropy_kernel_never_reads_an_out_of_range_target(standin):
    logits = minidl.randn(4, 5).to("cuda").array
    target = minidl.tensor(np.array([1, 5, -3, -100])).to("cuda").array
    loss, lse = xent.softmax_cross_entropy_forward(logits, target, 0.0, -100)
    dx = xent.softmax_cross_entropy_backward(logits, target, lse, standin.cupy.ones(4, dtype=logits.dtype), 0.0, -100)
    loss, dx = loss.get(), dx.get()
    assert np.isfinite(loss[0]) and np.isnan(loss[1:3]).all() and loss[3] == 0
    assert np.isnan(dx[1:3]).all() and np.isfinite(dx[[0, 3]]).all() and (dx[3] == 0).all()


# ----------------------------------------------------------------------- zero rows launched a (0,) grid
def test_ops_on_an_empty_batch_launch_nothing(standin):
    empty = minidl.zeros(0, 3, 6, 6).to("cuda")
    assert F.conv2d(empty, minidl.randn(4, 3, 3, 3).to("cuda"), padding=1).shape == (0, 4, 6, 6)
    assert F.max_pool2d(empty, 2).shape == (0, 3, 3, 3)
    assert F.dropout(empty, 0.5).shape == (0, 3, 6, 6)
    loss = F.cross_entropy(minidl.zeros(0, 5).to("cuda"), minidl.tensor(np.zeros(0, dtype=np.int64)).to("cuda"),
                           reduction="sum")
    assert loss.item() == 0
    assert sum(standin.counts.launches.values()) == 0


# ----------------------------------------------------------------------- the max-pool backward misread int32 indices
def test_max_pool_backward_refuses_indices_it_would_misread(standin):
    x = minidl.randn(1, 2, 4, 4).to("cuda").array
    y, indices = pooling.max_pool_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(TypeError, match="indices must be int64"):
        pooling.max_pool_backward(y, indices.astype(np.int32), x.shape, (2, 2), (2, 2), (0, 0), (1, 1), False)


# ----------------------------------------------------------------------- sgd_update_multi(momentum, bufs=None) raised TypeError
def test_fused_sgd_with_momentum_and_no_buffers_takes_a_first_step(standin):
    params = [minidl.tensor(np.array([1.0, 2.0])).to("cuda").array]
    grads = [minidl.tensor(np.array([0.5, -1.0])).to("cuda").array]
    bufs = fused_optim.sgd_update_multi(params, grads, None, lr=0.1, momentum=0.9, weight_decay=0.1)
    d = np.array([0.5, -1.0]) + 0.1 * np.array([1.0, 2.0])  # torch: buf = d on the first step
    np.testing.assert_allclose(bufs[0].get(), d)
    np.testing.assert_allclose(params[0].get(), np.array([1.0, 2.0]) - 0.1 * d)
