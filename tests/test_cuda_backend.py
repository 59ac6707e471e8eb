"""The CUDA backend (minidl/backends/cuda): its kernels reached from the ops, equal to the CPU, and a
whole training run on the device -- in CI on the CuPy stand-in (tests/cupy_standin), on a real GPU
with ``pytest -m gpu`` (the ``device_env`` fixture runs each test on both where both exist).

Comparisons are in float64 wherever the point is "the same function" (kernel and CPU then agree to
~1e-12 whatever order they sum in, across ReLU kinks included); float32 is held to an argued bound.
"""
import copy

import numpy as np
import pytest

import minidl
from minidl import amp, backends, nn, optim
from minidl.backends.cuda import batchnorm as bn_kernels, compile as kernel_compile
from minidl.data import DataLoader, FakeData, transforms as T
from minidl.nn import functional as F
from tests.kernel_emulator import kernel_signatures


def _leaf(array, device="cuda", requires_grad=True):
    return minidl.tensor(array).to(device).requires_grad_(requires_grad)


def _host(tensor):
    return tensor.detach().cpu().array


# ======================================================================================= kernel coverage
def _run_every_kernel_path(dtype):
    """One forward and backward of each op with a kernel, plus an optimizer step of each fused optimizer."""
    data = np.random.default_rng(0)
    x = _leaf(data.standard_normal((2, 4, 6, 6)).astype(dtype))
    w = _leaf(data.standard_normal((4, 4, 3, 3)).astype(dtype))
    gamma, beta = _leaf(np.ones(4, dtype)), _leaf(np.zeros(4, dtype))
    running_mean, running_var = minidl.zeros(4, dtype=dtype).to("cuda"), minidl.ones(4, dtype=dtype).to("cuda")
    y = F.conv2d(x, w, None, padding=1)
    y = F.batch_norm_relu(y, running_mean, running_var, gamma, beta, training=True)
    y = F.add_relu(F.batch_norm(y, running_mean, running_var, gamma, beta, training=False), x)
    y = F.dropout(F.max_pool2d(y, 2), 0.3) + F.dropout2d(y, 0.3)[:, :, :3, :3]
    loss = F.cross_entropy(y.flatten(1), minidl.tensor(np.array([1, 5])).to("cuda"))
    loss.backward()
    optim.SGD([w], lr=0.1, momentum=0.9).step()
    optim.Adam([gamma], lr=0.1).step()
    optim.AdamW([beta], lr=0.1, amsgrad=True).step()


EXPECTED_LAUNCHES = {  # op -> kernels of kernels/*.cu (without the _f32/_f64 suffix) it launches
    "conv2d": {"im2col", "col2im"},
    "batch_norm (training, fused ReLU)": {"bn_stats_partial", "bn_stats_finalize", "bn_apply", "bn_backward_partial",
                                          "bn_backward_finalize", "bn_backward_apply"},
    "max_pool2d": {"maxpool_forward", "maxpool_backward"},
    "cross_entropy": {"softmax_xent_forward", "softmax_xent_backward"},
    "dropout": {"dropout_forward", "dropout_apply"},
    "dropout2d": {"dropout_mask"},
    "add_relu": {"add_relu_forward", "relu_backward"},
    "SGD / Adam / AdamW": {"sgd_multi", "adam_multi"},
    "bf16 autocast GEMM": {"float_to_bf16_bits"},
}


def test_every_kernel_in_kernels_dir_is_launched_by_an_op(standin, kernels):
    for dtype in (np.float32, np.float64):
        _run_every_kernel_path(dtype)
    with amp.autocast(dtype="bfloat16"):
        F.conv2d(minidl.randn(1, 2, 4, 4).to("cuda"), minidl.randn(3, 2, 3, 3).to("cuda"))
    launched = set(standin.counts.launches)
    defined = {name for file in kernel_compile.kernel_files()
               for name in kernel_signatures(kernel_compile.kernel_source(file))}
    assert launched == defined, f"never launched: {sorted(defined - launched)}"
    assert set().union(*EXPECTED_LAUNCHES.values()) == {name.rsplit("_f", 1)[0] if name[-4:] in ("_f32", "_f64")
                                                        else name for name in defined}


@pytest.mark.parametrize("op, call", [
    ("conv2d", lambda x: F.conv2d(x, minidl.randn(3, 4, 3, 3).to("cuda").requires_grad_(), None, padding=1)),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2)),
    ("cross_entropy", lambda x: F.cross_entropy(x.flatten(1), minidl.tensor(np.array([0, 3])).to("cuda"))),
    ("dropout", lambda x: F.dropout(x, 0.5)),
    ("dropout2d", lambda x: F.dropout2d(x, 0.5)),
    ("add_relu", lambda x: F.add_relu(x, x * 2)),
])
def test_each_op_launches_its_kernels_and_the_reference_switch_none(standin, op, call):
    for reference in (False, True):
        standin.counts.reset()
        with backends.reference(reference):
            x = minidl.randn(2, 4, 4, 4).to("cuda").requires_grad_()
            out = call(x)
            out.backward(minidl.ones_like(out))
        launched = {name.rsplit("_f", 1)[0] if name[-4:] in ("_f32", "_f64") else name
                    for name in standin.counts.launches}
        assert launched == (set() if reference else EXPECTED_LAUNCHES[op]), (op, reference)


# ======================================================================================= single ops
def test_conv_backward_keeps_x_not_the_columns(device_env, kernels):
    x, w = _leaf(np.ones((2, 8, 10, 10))), _leaf(np.ones((8, 8, 3, 3)))
    fn = F.conv2d(x, w, padding=1).grad_fn
    saved = sum(v.nbytes for v in vars(fn).values() if hasattr(v, "nbytes"))
    assert type(fn).__name__ == "Conv2dCuda"
    assert saved <= x.array.nbytes + w.array.nbytes  # cols would be 9x x


def test_batch_norm_statistics_stay_exact_for_a_large_mean_and_many_chunks(device_env, monkeypatch):
    monkeypatch.setattr(bn_kernels, "CHUNK", 7)  # many small chunks per channel: exercises Chan's merge
    data = np.random.default_rng(3)
    x = data.standard_normal((6, 3, 5, 7)) * 2 + 1e4  # one-pass sums of squares would cancel to noise
    mean, var = bn_kernels.batch_stats(minidl.tensor(x).to("cuda").array)
    np.testing.assert_allclose(mean.get(), x.mean(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(var.get(), x.var(axis=(0, 2, 3)), rtol=1e-10)


def test_running_statistics_and_momentum_none_match_the_cpu(device_env):
    data = np.random.default_rng(4)
    modules = {device: nn.BatchNorm2d(3, momentum=None).to(device) for device in ("cpu", "cuda")}
    for step in range(3):
        x = data.standard_normal((4, 3, 2, 2)) * (step + 1)
        for device, module in modules.items():
            module(minidl.tensor(x).to(device))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(modules["cuda"], name).cpu().array,
                                   getattr(modules["cpu"], name).array, rtol=1e-12, err_msg=name)


# ======================================================================================= dropout
_PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))


def philox4x32_10(counter, key):
    """Philox4x32-10 in NumPy (Salmon et al. 2011): ``counter`` 4 uint32 arrays, ``key`` 2 uint32."""
    c = [np.asarray(word, dtype=np.uint32) for word in counter]
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0, p1 = _PHILOX_M[0] * c[0].astype(np.uint64), _PHILOX_M[1] * c[2].astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
            c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
            k0, k1 = k0 + _PHILOX_W[0], k1 + _PHILOX_W[1]
    return np.stack(c)


def dropout_uniforms(size, key, counter=0):
    """The uniforms kernels/dropout.cu draws for elements 0..size-1 (float32), from the NumPy Philox."""
    position = np.arange(size, dtype=np.uint64) + np.uint64(counter)
    group = position >> np.uint64(2)
    zeros = np.zeros(size, dtype=np.uint32)
    words = philox4x32_10([group.astype(np.uint32), (group >> np.uint64(32)).astype(np.uint32), zeros, zeros],
                          [np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)])
    chosen = words[(position & np.uint64(3)).astype(np.intp), np.arange(size)]
    return (chosen >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def test_philox_matches_the_random123_known_answers():
    cases = [([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
             ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
             ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
              [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])]
    for counter, key, expected in cases:
        assert [int(w[0]) for w in philox4x32_10([np.array([c], dtype=np.uint32) for c in counter], key)] == expected


def test_dropout_masks_are_the_philox_stream_and_follow_the_seed_and_the_saved_state(device_env, kernels):
    minidl.manual_seed(123)
    x = minidl.ones(7, 13, 5).to("cuda")
    first, second = F.dropout(x, 0.3), F.dropout(x, 0.3)
    size = 7 * 13 * 5
    expected_first = dropout_uniforms(size, key=123, counter=0) >= 0.3
    expected_second = dropout_uniforms(size, key=123, counter=-(-size // 4) * 4) >= 0.3
    np.testing.assert_array_equal(_host(first).reshape(-1) != 0, expected_first)
    np.testing.assert_array_equal(_host(second).reshape(-1) != 0, expected_second)
    np.testing.assert_allclose(_host(first)[_host(first) != 0], 1 / 0.7, rtol=1e-6)
    state = minidl.get_rng_state()
    third = _host(F.dropout(x, 0.3))
    minidl.manual_seed(5)
    minidl.set_rng_state(state)  # a resumed run continues the GPU stream
    np.testing.assert_array_equal(_host(F.dropout(x, 0.3)), third)
    big = _host(F.dropout(minidl.ones(200_000).to("cuda"), 0.25))
    assert abs((big == 0).mean() - 0.25) < 0.005


# ======================================================================================= optimizers
OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_momentum_wd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    "sgd_dampening": lambda p: optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3),
    "sgd_maximize": lambda p: optim.SGD(p, lr=0.05, momentum=0.8, maximize=True),
    "adam": lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.9, centered=True),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_on_cuda_follows_the_cpu(device_env, name):
    data = np.random.default_rng(5)
    shapes = [(3, 5), (257,), (1,), (4, 3, 3, 3)] + [(2,)] * 50  # more than one launch of the fused kernels
    initial = [data.standard_normal(s) for s in shapes]
    grads = [[data.standard_normal(s) for s in shapes] for _ in range(3)]
    results = {}
    for device in ("cpu", "cuda"):
        params = [minidl.tensor(a).to(device).requires_grad_() for a in initial]
        optimizer = OPTIMIZERS[name](params[:-5])
        for step, step_grads in enumerate(grads):
            if step == 1:
                optimizer.add_param_group({"params": params[-5:]})  # later parameters start later
            for p, g in zip(params, step_grads):
                p.grad = minidl.tensor(g).to(device)
            optimizer.step()
        results[device] = [_host(p) for p in params]
    for index, (ours, theirs) in enumerate(zip(results["cuda"], results["cpu"])):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14, err_msg=f"parameter {index}")


# ======================================================================================= training on the device
def _resnet20_pair(dtype):
    minidl.manual_seed(0)
    cpu_model = minidl.models.resnet20().to(dtype=dtype)
    return cpu_model, copy.deepcopy(cpu_model).to("cuda")


def _batch(size, dtype, seed=0, image=16):
    """A batch of random images (16x16: the CIFAR ResNets take any size, and the tests run 4x faster)."""
    data = np.random.default_rng(seed)
    return data.standard_normal((size, 3, image, image)).astype(dtype), data.integers(0, 10, size)


def _step(model, x, y, device):
    loss = F.cross_entropy(model(minidl.tensor(x).to(device)), minidl.tensor(y).to(device))
    loss.backward()
    return float(loss.item()), [p.grad.cpu().array for p in model.parameters()]


def test_resnet20_training_step_on_cuda_equals_the_cpu_in_float64(device_env):
    """float64 on both sides: the kernels and the CPU path differ only by rounding (~1e-16 per op), so
    a ReLU input that rounds to the other side of 0 needs |x| < ~1e-13 -- never met -- and gradients
    agree to 1e-9 relative to each tensor's largest entry."""
    cpu_model, cuda_model = _resnet20_pair(np.float64)
    x, y = _batch(4, np.float64)
    cpu_loss, cpu_grads = _step(cpu_model, x, y, "cpu")
    cuda_loss, cuda_grads = _step(cuda_model, x, y, "cuda")
    assert abs(cuda_loss - cpu_loss) <= 1e-12 * abs(cpu_loss)
    for (name, _), ours, theirs in zip(cpu_model.named_parameters(), cuda_grads, cpu_grads):
        scale = np.abs(theirs).max() + 1e-300
        np.testing.assert_allclose(ours / scale, theirs / scale, atol=1e-9, err_msg=name)


def test_resnet20_float32_step_on_cuda_is_as_accurate_as_the_cpu(device_env):
    """float32 against the float64 truth: the device's gradient error must stay within 3x the CPU's own
    float32 error (plus 1e-6).  Comparing the two float32 paths with each other directly would measure
    rounding luck: one ReLU input of ~1e-7 rounding to the other side of 0 moves a gradient by far more
    than any tolerance that still catches a wrong kernel."""
    truth_model, cuda_model = _resnet20_pair(np.float64)
    cpu32_model = copy.deepcopy(truth_model).to(dtype=np.float32)
    cuda_model.to(dtype=np.float32)
    x, y = _batch(4, np.float64, seed=1)
    _, truth = _step(truth_model, x, y, "cpu")
    _, cpu32 = _step(cpu32_model, x.astype(np.float32), y, "cpu")
    _, cuda32 = _step(cuda_model, x.astype(np.float32), y, "cuda")
    for (name, _), exact, ours, theirs in zip(truth_model.named_parameters(), truth, cuda32, cpu32):
        ours_error, cpu_error = (np.linalg.norm(a - exact) / np.linalg.norm(exact) for a in (ours, theirs))
        assert ours_error <= 3 * cpu_error + 1e-6, (name, ours_error, cpu_error)


def test_a_warm_training_step_makes_no_host_sync_and_no_host_to_device_copy(standin):
    minidl.manual_seed(0)
    model = minidl.models.resnet20().to("cuda")
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = _batch(2, np.float32, image=8)
    inputs, targets = minidl.tensor(x).to("cuda"), minidl.tensor(y).to("cuda")

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()

    step(), step()  # warm: momentum buffers exist
    used = standin.pool.used
    standin.counts.reset()
    step()
    counts = standin.counts
    assert (counts.syncs, counts.host_to_device, counts.device_to_host) == (0, 0, 0), counts.sites
    kernels = {"bn_apply_f32", "add_relu_forward_f32", "im2col_f32", "sgd_multi_f32"}  # or the generic path: none
    assert kernels <= set(counts.launches) if not backends.using_reference() else not counts.launches
    step()
    assert standin.pool.used == used  # nothing accumulates from step to step


@pytest.fixture
def pattern_loaders():
    from tests.test_trainer import pattern_data
    train = DataLoader(pattern_data(48, seed=1), batch_size=16, shuffle=True, seed=0,
                       transform=T.RandomHorizontalFlip(), device="cuda")
    val = DataLoader(pattern_data(32, seed=2), batch_size=16, device="cuda")
    return train, val


def _trainer(out_dir):
    from minidl.train import Trainer
    from tests.test_trainer import small_cnn
    minidl.manual_seed(0)
    model = small_cnn().to("cuda")
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
    return Trainer(model, optimizer, scheduler=scheduler, device="cuda", out_dir=out_dir, progress=False)


def test_trainer_fit_on_cuda_resumes_bit_for_bit(device_env, tmp_path, pattern_loaders, kernels):
    """With the kernels: their dropout stream (Philox key and counter) is part of the saved random state.
    (The generic GPU path draws from a CuPy generator that a checkpoint does not capture; see minidl.random.)"""
    train, val = pattern_loaders
    straight = _trainer(tmp_path / "straight")
    straight.fit(train, epochs=2, val_loader=val)
    _trainer(tmp_path / "split").fit(train, epochs=1, val_loader=val)
    resumed = _trainer(tmp_path / "split")
    minidl.manual_seed(999)  # a new process starts from other random state (dropout draws on the device)
    resumed.fit(train, epochs=2, val_loader=val, resume=True)
    for (name, expected), actual in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    assert resumed.history.rows[1]["train_loss"] == straight.history.rows[1]["train_loss"]
    assert np.isfinite(straight.history.rows[-1]["val_loss"])


def test_a_dataloader_epoch_on_cuda_equals_the_cpu_one(device_env):
    dataset = FakeData(size=40, seed=0)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                           T.Normalize((0.49, 0.48, 0.45), (0.2, 0.2, 0.2))])
    kwargs = dict(batch_size=16, shuffle=True, transform=transform, seed=3)
    on_cuda = [(images, labels) for images, labels in DataLoader(dataset, device="cuda", **kwargs)]
    on_cpu = list(DataLoader(dataset, prefetch=0, **kwargs))
    assert len(on_cuda) == len(on_cpu) == 3
    for (images, labels), (cpu_images, cpu_labels) in zip(on_cuda, on_cpu):
        assert images.is_cuda and labels.is_cuda
        np.testing.assert_allclose(_host(images), cpu_images.array, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(_host(labels), cpu_labels.array)


# ======================================================================================= mixed precision
def test_bf16_autocast_on_the_kernel_path_matches_the_cpu_emulation(device_env):
    cpu_model, cuda_model = _resnet20_pair(np.float32)
    x, y = _batch(4, np.float32, seed=2)
    losses = {}
    for model, device in ((cpu_model, "cpu"), (cuda_model, "cuda")):
        with amp.autocast(dtype="bfloat16"):
            logits = model(minidl.tensor(x).to(device))
        loss = F.cross_entropy(logits, minidl.tensor(y).to(device))
        loss.backward()
        losses[device] = loss.item()
        assert logits.dtype == minidl.float32
    # Both round every GEMM input to bf16 and accumulate in float32, in another order; where an activation
    # lies near the midpoint of two bf16 neighbours that order decides its rounding, one bf16 ulp (2^-8
    # relative) for that element.  Measured: 2.6e-4 relative on the loss; a wrong bf16 path is off by O(1).
    assert abs(losses["cuda"] - losses["cpu"]) <= 2e-3 * abs(losses["cpu"])
    assert all(p.grad is not None and p.grad.dtype == minidl.float32 for p in cuda_model.parameters())


def test_grad_scaler_with_fp16_autocast_steps_or_skips_on_the_device(device_env):
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5))
    model.to("cuda")
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = amp.GradScaler()
    x, y = minidl.randn(4, 3, 8, 8).to("cuda"), minidl.tensor(np.array([0, 1, 2, 3])).to("cuda")
    before = [_host(p) for p in model.parameters()]
    with amp.autocast("cuda", dtype="float16"):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 16
    after = [_host(p) for p in model.parameters()]
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))
    optimizer.zero_grad()
    scaler.scale(F.cross_entropy(model(x), y)).backward()
    model[0].weight.grad.array[0] = np.inf  # an overflow: the step is skipped, the scale halves
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 15
    for a, b in zip((_host(p) for p in model.parameters()), after):
        np.testing.assert_array_equal(a, b)
