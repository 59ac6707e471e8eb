"""Every op on a CUDA tensor, forward and backward, equals the same op on the CPU.

Runs on the strict CuPy stand-in (tests/cupy_standin) in CI, and on a real GPU with ``-m gpu``.
Each case runs twice on the device: with the CUDA backend's kernels where an op has them
(``kernels``), and with every op forced to its generic CuPy reference (``reference``:
``minidl.backends.reference()``).  Inputs are float64, so the device and the CPU agree to
rounding (1e-10 relative) whatever order they sum in; a kernel with a wrong index is off by O(1).
"""
import numpy as np
import pytest

import minidl
from minidl import backends
from minidl.nn import functional as F


def _conv_groups(x, w, b):
    return F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)


def _batch_norm_eval(x, w, b):
    mean, var = minidl.tensor(np.linspace(-1, 1, x.shape[1])), minidl.tensor(np.linspace(0.5, 2, x.shape[1]))
    return F.batch_norm(x, mean.to(x.device), var.to(x.device), w, b, training=False)


def _cross_entropy_weighted(x):
    target = minidl.tensor(np.array([1, 0, 3, 2, -100, 3])).to(x.device)
    weight = minidl.tensor(np.array([0.5, 1.0, 2.0, 1.5])).to(x.device)
    return F.cross_entropy(x, target, weight=weight, label_smoothing=0.1)


def _targets(device, values=(1, 0, 3, 2, -100, 3)):
    return minidl.tensor(np.array(values)).to(device)


# name -> (function of the device tensors, input shapes, positive inputs?)
CASES = {
    "add_broadcast": (lambda a, b: a + b, [(3, 4), (4,)], False),
    "sub": (lambda a, b: a - b, [(3, 4), (3, 1)], False),
    "mul": (lambda a, b: a * b, [(2, 3), (2, 3)], False),
    "div": (lambda a, b: a / b, [(2, 3), (3,)], True),
    "neg_scalar_ops": (lambda a: 2.0 - (-a) * 3 + 1.5 / (a + 4), [(5,)], True),
    "pow_scalar": (lambda a: a ** 3, [(4,)], False),
    "pow_tensor": (lambda a, b: a ** b, [(4,), (4,)], True),
    "matmul": (lambda a, b: a @ b, [(3, 4), (4, 2)], False),
    "matmul_batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)], False),
    "exp_log_sqrt": (lambda a: a.exp() + a.log() + a.sqrt(), [(6,)], True),
    "tanh_sigmoid_abs": (lambda a: a.tanh() * a.sigmoid() + a.abs(), [(6,)], False),
    "clamp": (lambda a: a.clamp(-0.5, 0.5), [(8,)], False),
    "where": (lambda a, b: minidl.where(a > 0, a, b), [(7,), (7,)], False),
    "sum_mean_var": (lambda a: a.sum(1) + a.mean(1) + a.var(1), [(3, 5)], False),
    "max_min": (lambda a: a.max(1).values + a.min(0).values.sum() + a.amax(), [(3, 5)], False),
    "reshape_permute": (lambda a: a.reshape(2, 6).permute(1, 0).flatten(), [(3, 4)], False),
    "expand_squeeze": (lambda a: a.unsqueeze(0).expand(3, 1, 4).squeeze(1), [(1, 4)], False),
    "getitem_slice": (lambda a: a[1:, ::2], [(4, 6)], False),
    "getitem_fancy": (lambda a: a[minidl.tensor(np.array([0, 2, 2])).to(a.device)], [(4, 3)], False),
    "cat_stack": (lambda a, b: minidl.cat([a, b], 1).sum() + minidl.stack([a, b]).sum(0), [(2, 3), (2, 3)], False),
    "pad": (lambda a: F.pad(a, (1, 2, 0, 1), value=0.5), [(2, 3, 4)], False),
    "relu_leaky_elu": (lambda a: F.relu(a) + F.leaky_relu(a, 0.1) + F.elu(a), [(3, 7)], False),
    "softmax_log_softmax": (lambda a: F.softmax(a, 1) * 2 + F.log_softmax(a, 0), [(4, 5)], False),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(3, 4), (5, 4), (5,)], False),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 3, 6, 5), (4, 3, 3, 3), (4,)], False),
    "conv2d_strided_no_bias": (lambda x, w: F.conv2d(x, w, None, stride=2, padding=(0, 1)),
                               [(2, 3, 7, 6), (4, 3, 3, 2)], False),
    "conv2d_groups_dilated": (_conv_groups, [(2, 4, 7, 7), (6, 2, 3, 3), (6,)], False),
    "batch_norm_train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         [(4, 3, 5, 6), (3,), (3,)], False),
    "batch_norm_1d": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(7, 5), (5,), (5,)], False),
    "batch_norm_eval": (_batch_norm_eval, [(3, 4, 3, 3), (4,), (4,)], False),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), [(2, 3, 9, 8)], False),
    "max_pool2d_ceil_dilation": (lambda x: F.max_pool2d(x, 2, 2, 0, dilation=2, ceil_mode=True),
                                 [(2, 2, 9, 10)], False),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [(2, 3, 7, 6)], False),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)) + 0 * F.adaptive_avg_pool2d(x, 1).sum(),
                            [(2, 3, 5, 7)], False),
    "cross_entropy": (lambda x: F.cross_entropy(x, _targets(x.device)), [(6, 4)], False),
    "cross_entropy_smoothing_sum": (lambda x: F.cross_entropy(x, _targets(x.device), reduction="sum",
                                                              label_smoothing=0.2), [(6, 4)], False),
    "cross_entropy_none": (lambda x: F.cross_entropy(x, _targets(x.device), reduction="none"), [(6, 4)], False),
    "cross_entropy_weighted": (_cross_entropy_weighted, [(6, 4)], False),
    "cross_entropy_spatial": (lambda x: F.cross_entropy(x, _targets(x.device, [[0, 2], [1, 1]])),
                              [(2, 3, 2)], False),
    "nll_loss": (lambda x: F.nll_loss(F.log_softmax(x, 1), _targets(x.device)), [(6, 4)], False),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), [(3, 4), (3, 4)], False),
    # PyTorch's math and shape ops beyond the layers (tensor_math / tensor_indexing)
    "trig_hyperbolic": (lambda a: a.sin() + a.cos() * a.tan().tanh() + a.sinh() + a.cosh() + a.atan() + a.asinh(),
                        [(7,)], False),
    "inverse_trig": (lambda a: (a / 3).asin() + (a / 3).acos() + (a + 1.5).acosh() + (a / 3).atanh()
                     + minidl.atan2(a, a + 2), [(6,)], True),
    "exp_log_family": (lambda a: a.exp2() + a.expm1() + a.log2() + a.log10() + a.log1p() + a.rsqrt() + a.erf()
                       + a.square() + a.reciprocal(), [(6,)], True),
    "rounding_sign": (lambda a: a.floor() + a.ceil() + a.round() + a.trunc() + a.frac() + a.sign() * a, [(8,)], False),
    "fmod_remainder_div": (lambda a, b: a.fmod(b) + a.remainder(b) + a.div(b, rounding_mode="floor") + a.copysign(b),
                           [(6,), (6,)], True),
    "maximum_minimum": (lambda a, b: minidl.maximum(a, b) - minidl.minimum(a, b), [(3, 4), (4,)], False),
    "prod_logsumexp": (lambda a: a.prod(1) + a.logsumexp(0).sum(), [(3, 4)], True),
    "cumulative": (lambda a: a.cumsum(1) + a.cumprod(1) + a.cummax(1).values + a.cummin(0).values, [(3, 4)], True),
    "std_var_mean": (lambda a: sum(minidl.std_mean(a, 1)) + sum(minidl.var_mean(a, 0)).sum(), [(3, 5)], False),
    "gather_scatter": (lambda a, b: a.gather(1, _index(a, [[0, 2], [1, 1], [3, 0]])).sum() + b.scatter_add(
        0, _index(b, [[0, 1, 2, 0]]), b[:1]) + b.scatter(1, _index(b, [[3], [2], [1]]), 0.5), [(3, 4), (3, 4)], False),
    "scatter_reduce": (lambda a, b: a.scatter_reduce(0, _index(a, [[0, 1, 0, 2], [2, 2, 1, 0]]), b[:2], "amax"),
                       [(3, 4), (3, 4)], False),
    "index_select_masked": (lambda a: a.index_select(1, _index(a, [2, 0])).sum() + a.masked_fill(a > 0.5, 2.0),
                            [(3, 4)], False),
    "sort_topk": (lambda a: a.sort(1).values * 2 + a.topk(2, 1).values.sum() + a.msort(), [(3, 4)], False),
    "flip_roll_tril": (lambda a: a.flip(0) + a.roll(1, 1) + a.tril() + a.triu(1) + a.diag().sum(), [(4, 4)], False),
    "repeat_tile_unfold": (lambda a: a.repeat(2, 1).sum(0) + a.tile(2).reshape(2, -1).sum(0)[:4]
                           + a.unfold(1, 2, 1).sum(2).sum(0)[0], [(2, 4)], False),
    "split_chunk_narrow": (lambda a: sum(p.sum() for p in a.split(2, 1)) + a.chunk(2, 0)[1].sum() + a.narrow(1, 1, 2),
                           [(4, 3)], False),
    "einsum": (lambda a, b: minidl.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)], False),
    # the nn half of PyTorch compatibility
    "smooth_activations": (lambda a: F.gelu(a) + F.silu(a) + F.mish(a) + F.softplus(a) + F.logsigmoid(a) + F.selu(a)
                           + F.celu(a) + F.softsign(a), [(9,)], False),
    "piecewise_activations": (lambda a: F.hardtanh(a) + F.relu6(a * 4) + F.hardsigmoid(a * 4) + F.hardswish(a * 4),
                              [(9,)], False),
    "binary_cross_entropy": (lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid())
                             + F.binary_cross_entropy(a.sigmoid(), b.sigmoid()), [(4, 3), (4, 3)], False),
    "soft_cross_entropy": (lambda a, b: F.cross_entropy(a, F.softmax(b, 1), label_smoothing=0.1), [(4, 5), (4, 5)],
                           False),
    "normalize_pad_modes": (lambda a: F.normalize(a, dim=1) + F.pad(a, (1, 1), mode="reflect")[:, :, 1:-1]
                            + F.pad(a, (1, 1), mode="replicate")[:, :, :-2], [(2, 3, 5)], False),
    "interpolate": (lambda a: F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False).sum()
                    + F.interpolate(a, size=(3, 5), mode="nearest"), [(2, 2, 4, 3)], False),
    "conv1d_conv_transpose2d": (lambda x, w, v: F.conv1d(x.flatten(2), w, padding=1).sum()
                                + F.conv_transpose2d(x, v, stride=2, padding=1), [(2, 3, 4, 4), (5, 3, 3), (3, 2, 3, 3)],
                                False),
    "max_unpool2d": (lambda a: F.max_unpool2d(*F.max_pool2d(a, 2, return_indices=True), 2), [(2, 3, 4, 6)], False),
}


def _index(like, values):
    return minidl.tensor(np.array(values)).to(like.device)


def _inputs(shapes, positive, seed):
    data = np.random.default_rng(seed)
    arrays = [data.standard_normal(shape) for shape in shapes]
    return [np.abs(a) + 0.5 for a in arrays] if positive else arrays


def _run(function, arrays, device, gradient_seed=7):
    leaves = [minidl.tensor(a, requires_grad=True) for a in arrays]
    inputs = [leaf.to(device) for leaf in leaves]
    output = function(*inputs)
    gradient = np.random.default_rng(gradient_seed).standard_normal(output.shape)
    output.backward(minidl.tensor(gradient).to(device))
    return output.detach().cpu().array, [leaf.grad.array if leaf.grad is not None else None for leaf in leaves]


@pytest.mark.parametrize("path", ["kernels", "reference"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_on_cuda_equals_cpu(device_env, name, path):
    function, shapes, positive = CASES[name]
    arrays = _inputs(shapes, positive, seed=len(name))
    expected, expected_grads = _run(function, arrays, "cpu")
    with backends.reference(path == "reference"):
        actual, grads = _run(function, arrays, "cuda")
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name}: output")
    for index, (grad, expected_grad) in enumerate(zip(grads, expected_grads)):
        assert (grad is None) == (expected_grad is None), f"{name}: gradient {index} missing on one device"
        if grad is not None:
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name}: gradient of input {index}")
