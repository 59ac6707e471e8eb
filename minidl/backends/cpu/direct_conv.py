"""Direct convolution of float32 channels-last images with SIMD micro-kernels (no im2col, no GEMM call).

Every convolution here, whatever its kernel size, stride, padding or dilation, and both of its
gradients, is reduced to one shape of loop that a register-tiled micro-kernel runs well
(conv_codegen.py writes it, simd.py gives it vector registers):

    out[q] = bias + sum over taps t, channels c of  src[q + offset[t], c] * w[t, c, :]

``src`` is a scratch copy of one image with its zero padding, laid out so that output pixel
(oh, ow) is the flat index q = oh * wv + ow and every tap is a fixed shift of q:

* stride 1: src is the padded image, wv its padded width; tap (kh, kw) reads q + kh*dh*wv + kw*dw.
* stride s: the padded image is split into s*s *planes* by row and column parity (space-to-depth):
  plane (a, b) holds rows a, a+s, ... and columns b, b+s, ...  Output (oh, ow) with tap (kh, kw)
  reads padded pixel (s*oh + kh, s*ow + kw), which is pixel (oh + kh//s, ow + kw//s) of plane
  (kh%s, kw%s): again a fixed shift of q = oh * wv + ow, wv the planes' width.
* a tile computes any R valid output pixels, each with its own q (PixelTable: across rows and the
  images of a chunk), so no padding column is computed, and sums only the taps that read real input
  for its class of pixels (a 3x3 layer's corners 4 taps, edges 6: a third less work at 4x4).

Forward: y = conv(x).  Input gradient, dL/dx[h, w] = sum over (kh, kw, oc) with s*oh + kh*d - pad = h
of g[oh, ow, oc] * W[oc, :, kh, kw]: split the pixels of dx by their row and column remainder mod s
(the *phases*); within phase (a, b) the taps that reach it read g at a fixed shift, so each phase is
a stride-1 convolution of the zero-padded g with a subset of the (transposed) kernel, written to every
s-th pixel of dx.  Stride 1 has one phase: the convolution of g with the flipped kernel.  A 1x1
stride-2 layer's three other phases have no taps and are written as zeros.

Weight gradient: dL/dW[t, c, oc] = sum over images and output pixels q of src[q + offset[t], c] * g[q, oc],
tiled over (t, c) rows and oc columns, summed over a band of output pixels at a time (src index of each
from a table, g packed by blocks of output channels, dW written by blocks and unpacked per range).

Images are split across threads (``for_ranges``); each thread has its own scratch.  The weight gradient's
ranges start on the pool's workers and backward goes on meanwhile (``threads.map_ranges_later``,
``autograd.LaterGradient``).  A pass's plan, tile and tables are built once per geometry (``prepared``).
Channel counts need not be multiples of the vector width: weights are zero-padded to whole vectors and the
last vector of a pixel is stored lane by lane.  Only float32: float64 keeps the GEMM path.
"""
import numpy as np

from ...functions.conv import output_size
from .threads import Ready, for_ranges, for_ranges_parts, map_ranges_later
from . import conv_codegen, simd
from .scratch import (C_GROUP, C_IN, CHANNELS, CHUNK, H, IMAGE_SIZE, IN_PLACE, LEFT, MODE, PLANE_ROWS, PLANES,
                      SH, SLACK, SW, TOP, W, WV, fill_batch, pack_weight_blocks, unpack_weight_grad)

# Register tiles (R pixels or rows, V vectors) per vector width, chosen by output channels.  See conv_codegen.py
# and docs/cpu_kernels.md: R*V accumulators + V loaded vectors + 1 broadcast fit the register file.
# With AVX-512, 4 pixels x 4 vectors where the output channels fill four vectors (1-5% faster than 8 x 2, which
# loads fewer weights per FMA but needs twice the pixel pointers; 12 x 2 and 14 x 2 were slower still).
CONV_TILES = {4: {1: (6, 2), 2: (6, 2)}, 8: {1: (12, 1), 2: (6, 2)}, 16: {1: (8, 1), 2: (8, 2), 4: (4, 4)}}
# The weight gradient's candidates, the first that pads the KH*KW*C rows least (an RGB stem's 27 rows: R = 9, or 3
# with four vectors); with AVX-512, 6 x 4 (24 accumulators) where the output channels fill four vectors.
WEIGHT_GRAD_TILES = {4: {1: [(6, 2)]}, 8: {1: [(8, 1)], 2: [(6, 2)]},
                     16: {1: [(16, 1), (9, 1)], 2: [(6, 2)], 4: [(6, 4), (3, 4)]}}
# Cache blocking (a core's L2 is 0.5-2 MB): the scratch copies of a chunk of images take about SCRATCH_BYTES,
# the weights of one group of input channels and one block of output channels about PANEL_BYTES, and the
# weight gradient sums over about BAND_BYTES of dL/dy at a time.
SCRATCH_BYTES = 512 << 10
PANEL_BYTES = 128 << 10
BAND_BYTES = 64 << 10
PARALLEL_MIN_FLOPS = 1 << 22  # below this a layer runs on the calling thread
PARALLEL_MIN_COPY = 1 << 20  # floats: a smaller copy of weights or images runs on the calling thread
# dL/dW of at least this size is split across threads by output channels rather than by images (whose
# ranges would each need a partial dL/dW to sum)
SPLIT_CHANNELS_BYTES = 256 << 10


def tile(table, out_channels, width):
    """(R, V) for ``out_channels``: the table's entry for the most vectors that ``out_channels`` fill (at least one)."""
    vectors = -(-out_channels // width)
    return table[width][max(key for key in table[width] if key <= vectors or key == 1)]


class Plan:
    """What conv_images and weight_grad_images need to know about one geometry.

    ``plan`` (int64, indices named in scratch.py): mode (PLANES: copy each image into a zero-bordered
    scratch of planes; IN_PLACE: read the input itself),
    c_in (channels per scratch pixel), wv (the length of a row of the scratch), chunk (images per
    fill), image_size (floats per image: the scratch's, or the input's when IN_PLACE), c_group (input
    channels per pass), the fills' geometry (H, W, top, left, stride_h, stride_w, plane_rows, KH, KW,
    dilation_h, dilation_w, OH, OW) and slack (floats after the scratch for a tile running past the
    last pixel).  ``taps[p]``: the pixel offsets of phase p's taps; ``phases[p]``: (taps, weight
    offset, y pixel offset, y row step, y column step, output rows, output columns, y pixels per
    image); ``positions[p]``: the taps' (kh, kw).
    """

    def __init__(self, plan, taps, phases, positions):
        self.plan = np.asarray(plan, dtype=np.int64)
        width = max(1, max(len(t) for t in taps))
        self.taps = np.zeros((len(taps), width), dtype=np.int64)
        for p, offsets in enumerate(taps):
            self.taps[p, :len(offsets)] = offsets
        self.phases = np.asarray(phases, dtype=np.int64)
        self.positions = positions

    def blocked(self, images, block):
        """This plan with its chunk and channel group set for ``images`` images and ``block`` output channels."""
        image_bytes = 4 * int(self.plan[IMAGE_SIZE])
        self.plan[CHUNK] = max(1, min(images, SCRATCH_BYTES // max(1, image_bytes)))
        most_taps = max(1, int(self.phases[:, 0].max(initial=1)))
        self.plan[C_GROUP] = max(1, PANEL_BYTES // (4 * most_taps * block))
        return self


def forward_plan(x_shape, kernel_size, stride, padding, dilation, r_count, mode=None):
    """The plan of y = conv(x) for NHWC x of shape (N, H, W, C), and (OH, OW).

    ``mode``: PLANES (the padded image split by stride, one tap per kernel position), IN_PLACE (1x1 stride 1
    only), or None: IN_PLACE where it applies, else PLANES.
    """
    _, h, w, c = x_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    top, bottom, left, right = padding
    hp, wp = h + top + bottom, w + left + right
    oh, ow = output_size(h, kh, sh, top, bottom, dh), output_size(w, kw, sw, left, right, dw)
    geometry = (h, w, top, left, sh, sw)
    kernel = (kh, kw, dh, dw, oh, ow)
    positions = [(i, j) for i in range(kh) for j in range(kw)]
    in_place = kh == kw == 1 and stride == (1, 1) and not any(padding) and oh * ow >= r_count
    plane_rows, wv = -(-hp // sh), -(-wp // sw)
    if sw == 1:  # one zero column between rows serves as the right padding of one and the left of the next
        wv = max(w + max(left, right), ow)
    if mode is None:
        mode = IN_PLACE if in_place else PLANES
    if mode == IN_PLACE:  # a 1x1 stride-1 convolution reads the input itself
        plan, taps = (IN_PLACE, c, w, 1, h * w * c, 1) + geometry + (h,) + kernel + (0, c), [0]
    else:
        plane = plane_rows * wv
        taps = [((i * dh % sh) * sw + j * dw % sw) * plane + (i * dh // sh) * wv + j * dw // sw for i, j in positions]
        # the last tile may run up to R - 1 pixels past the last output pixel, plus the farthest tap
        pixels = max(sh * sw * plane, round_up(oh * wv, r_count) + max(taps))
        stride = pixel_stride(c)
        plan = (PLANES, stride, wv, 1, pixels * stride, 1) + geometry + (plane_rows,) + kernel + (0, c)
    phases = [(len(taps), 0, 0, ow, 1, oh, ow, oh * ow)]
    return Plan(plan, [taps], phases, [positions]), (oh, ow)


def pixel_stride(channels):
    """Floats per pixel of a scratch copy: the channels, plus 16 when they are a multiple of 64 from 256 on.

    With 256 or more channels the R broadcasts of a tile read R pixels a multiple of 1 KB apart, which all
    fall in a few of the L1 cache's 64 sets and evict each other; one spare cache line per pixel spreads
    them (7-10% faster on 512-channel layers)."""
    return channels + 16 if channels >= 256 and channels % 64 == 0 else channels


def input_grad_plan(g_shape, input_hw, kernel_size, stride, padding, dilation, r_count):
    """The plan of dL/dx from NHWC g (N, OH, OW, OC): one stride-1 convolution of padded g per phase."""
    _, oh, ow, oc = g_shape
    h, w = input_hw
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    top, _, left, _ = padding
    # phase a of the rows: kernel rows i with (a + top - i*dh) divisible by sh read g row (h - a)/sh + dy
    row_taps = [[(i, (a + top - i * dh) // sh) for i in range(kh) if (a + top - i * dh) % sh == 0] for a in range(sh)]
    col_taps = [[(j, (b + left - j * dw) // sw) for j in range(kw) if (b + left - j * dw) % sw == 0] for b in range(sw)]
    rows_of = [max(0, -(-(h - a) // sh)) for a in range(sh)]
    cols_of = [max(0, -(-(w - b) // sw)) for b in range(sw)]
    dys = [dy for taps in row_taps for _, dy in taps] or [0]
    dxs = [dx for taps in col_taps for _, dx in taps] or [0]
    pad_top, pad_left = max(0, -min(dys)), max(0, -min(dxs))
    rows = max(pad_top + oh, pad_top + max(rows_of) + max(dys))
    # reads past the end of a row land in the next row's zero columns (the left padding), as in forward_plan
    wv = max(pad_left + ow, max(cols_of) + max(dxs), max(cols_of))
    taps, phases, positions = [], [], []
    for a in range(sh):
        for b in range(sw):
            pairs = [(i, j, (dy + pad_top) * wv + dx + pad_left) for i, dy in row_taps[a] for j, dx in col_taps[b]]
            taps.append([offset for _, _, offset in pairs])
            positions.append([(i, j) for i, j, _ in pairs])
            phases.append((len(pairs), 0, a * w + b, sh * w, sw, rows_of[a], cols_of[b], h * w))
    max_offset = max([max(t) for t in taps if t] or [0])
    pixels = max(rows * wv, round_up(max(max(rows_of) * wv, 1), r_count) + max_offset)
    stride = pixel_stride(oc)
    plan = (PLANES, stride, wv, 1, pixels * stride, 1, oh, ow, pad_top, pad_left, 1, 1, rows, 1, 1, 1, 1, h, w, 0, oc)
    return Plan(plan, taps, phases, positions)


class PixelTable:
    """Which output pixels each register tile computes, and which taps it sums: the tiles compute no padding
    column of the scratch and skip the taps whose every read falls in the padding.

    The output pixels of each phase are put in *classes* by the taps that read real input pixels (for a 3x3
    layer with padding 1: the corners sum 4 taps, the edges 6, the interior 9; at 4x4 that is 25 of every 36
    products, at 2x2 16 of 36).  A tile takes the next R pixels of one class, across rows and across the
    images of a chunk, each pixel with its own offset into the scratch and into y.  Classes too small to fill
    their tiles are merged with another (the union of their taps: the extra taps read zeros) where that
    computes fewer products.

    Where one group holds every input channel and a scratch pixel holds just them, taps that read consecutive
    pixels (a row of a stride-1 kernel) are one *run*: their channels lie in a row in the scratch, and so do
    their weights, so the micro-kernel's loop over channels runs through all of them at once (an RGB stem:
    3 runs of 9 channels instead of 9 taps of 3).

    ``classes[k]``: (phase, first and stop in ``tap_list``, first entry, entries per image); ``tap_list[i]``:
    (t, m), the taps t..t+m-1 of the phase, a run of m; ``pixels[e]``: (src offset, y pixel) of entry e,
    relative to the chunk's first image, entries ordered by class, then image, then pixel.
    """

    def __init__(self, plan, r_count, images):  # built once per pass and chunk size: ConvPass keeps it
        self.classes, self.tap_list, self.pixels = _pixel_table(plan, r_count, images)


def _pixel_table(plan, r_count, images):
    """(classes, tap_list, pixels) of PixelTable for ``plan`` with chunks of up to plan's chunk images, the
    classes merged for chunks of ``images`` images."""
    c_in, wv, chunk, image_size = (int(plan.plan[i]) for i in (C_IN, WV, CHUNK, IMAGE_SIZE))
    runs = c_in == plan.plan[CHANNELS] <= plan.plan[C_GROUP]
    real = real_pixels(plan.plan)
    classes, tap_list, pixels = [], [], []
    for p, (n_taps, _, y_phase, ys_h, ys_w, rows, cols, y_image) in enumerate(plan.phases.tolist()):
        oh, ow = np.divmod(np.arange(rows * cols), cols)
        q = oh * wv + ow
        y_pixel = y_phase + oh * ys_h + ow * ys_w
        reads = q[:, None] + plan.taps[p, :n_taps][None, :]
        valid = real[np.minimum(reads, real.size - 1)] & (reads < real.size)
        for members, taps in merge_classes(valid, images, r_count):
            runs_of_taps = tap_runs(plan.taps[p], taps) if runs else [(t, 1) for t in taps]
            classes.append((p, len(tap_list), len(tap_list) + len(runs_of_taps), sum(map(len, pixels)), len(members)))
            tap_list.extend(runs_of_taps)
            offsets = (np.arange(chunk)[:, None] * image_size + q[members][None, :] * c_in).reshape(-1)
            ys = (np.arange(chunk)[:, None] * y_image + y_pixel[members][None, :]).reshape(-1)
            pixels.append(np.stack([offsets, ys], axis=1))
    return (np.array(classes, dtype=np.int64).reshape(-1, 5), np.array(tap_list + [(0, 1)], dtype=np.int64),
            np.concatenate(pixels).astype(np.int64))


def tap_runs(offsets, taps):
    """[(t, m)]: ``taps`` (increasing indices into the pixel ``offsets``) cut into runs of taps t..t+m-1 whose
    pixels follow each other."""
    runs = []
    for t in taps:
        if runs and runs[-1][0] + runs[-1][1] == t and offsets[t] == offsets[t - 1] + 1:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((t, 1))
    return runs


def merge_classes(valid, images, r_count):
    """[(pixel indices, tap indices)]: the output pixels grouped by their valid taps (rows of ``valid``,
    pixels x taps), then groups merged two at a time while that lowers the products a chunk of ``images``
    images computes: tiles of r_count pixels (the last one full too) times taps."""
    masks, inverse = np.unique(valid, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    groups = [(np.flatnonzero(inverse == g), masks[g]) for g in range(len(masks))]

    def cost(members, mask):
        return -(-len(members) * images // r_count) * r_count * (int(mask.sum()) + 1)

    while len(groups) > 1:
        best, pair = 0, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                merged = cost(np.empty(len(groups[a][0]) + len(groups[b][0])), groups[a][1] | groups[b][1])
                saving = cost(*groups[a]) + cost(*groups[b]) - merged
                if saving > best:
                    best, pair = saving, (a, b)
        if pair is None:
            break
        (ma, ka), (mb, kb) = groups[pair[0]], groups[pair[1]]
        groups[pair[0]] = (np.sort(np.concatenate([ma, mb])), ka | kb)
        del groups[pair[1]]
    return [(members, np.flatnonzero(mask).tolist()) for members, mask in groups]


def real_pixels(plan):
    """A boolean per pixel of one image's scratch: True where fill_image writes an input pixel, False on the
    padding (zeros).  IN_PLACE: every pixel."""
    c_in, image_size = int(plan[C_IN]), int(plan[IMAGE_SIZE])
    real = np.zeros(image_size // c_in, dtype=bool)
    if plan[MODE] != PLANES:  # the input itself (IN_PLACE): no padding
        real[:] = True
        return real
    h, w, top, left, sh, sw, plane_rows, wv = (int(plan[i]) for i in (H, W, TOP, LEFT, SH, SW, PLANE_ROWS, WV))
    rows, cols = np.arange(h) + top, np.arange(w) + left
    plane = (rows % sh)[:, None] * sw + (cols % sw)[None, :]
    real[((plane * plane_rows + (rows // sh)[:, None]) * wv + (cols // sw)[None, :]).reshape(-1)] = True
    return real


def round_up(value, multiple):
    return -(-value // multiple) * multiple


# ------------------------------------------------------------------ passes, built once per geometry
# Everything above depends on the shapes and the geometry only, never on the values: a pass's plan, tile, compiled
# module, weight layout and pixel tables are built on its first call and kept (``prepared``).  Building them is
# 30 us of Python in a loop, but 150-300 us per pass inside a training step, where the kernels have just evicted
# the interpreter's data from the caches: 61 passes made 10-15 ms of ResNet-20's step at batch 128, with the
# second core idle (docs/performance.md).
_passes = {}
MAX_PASSES = 256  # a network has a few dozen geometries; a long run of new shapes starts the cache over


def prepared(build, *key):
    """``build(*key)``, built on the first call with this key and kept; a pass is only read once built."""
    found = _passes.get((build, key))
    if found is None:
        if len(_passes) >= MAX_PASSES:
            _passes.clear()
        found = _passes[(build, key)] = build(*key)
    return found


def _blocking():
    """The cache-blocking sizes a pass is built with (part of its key, so that changing one builds it anew)."""
    return SCRATCH_BYTES, PANEL_BYTES, BAND_BYTES, SPLIT_CHANNELS_BYTES


class WeightLayout:
    """Where pack_weights puts the weights of each phase (the offsets also go in ``plan.phases``).

    ``weight_shape`` is (OC, C, KH, KW); the forward's input channels are C and outputs OC; the input
    gradient (``transpose``) reads OC channels of g and writes C; ``flip`` reads the kernel rotated by
    180 degrees (tap (i, j) is W[..., KH-1-i, KW-1-j]).  Outputs are zero-padded to whole blocks of ``block``.
    """

    def __init__(self, weight_shape, plan, transpose, block, flip=False):
        kernel_h, kernel_w = weight_shape[2:]
        self.outputs, self.inputs = weight_shape[:2] if not transpose else weight_shape[1::-1]
        self.kernel_h, self.kernel_w, self.transpose, self.block = kernel_h, kernel_w, transpose, block
        self.padded = round_up(self.outputs, block)
        self.phases = []  # (offset, the taps' (kh, kw) in the weights, size) per phase
        offset = 0
        for p, positions in enumerate(plan.positions):
            plan.phases[p, 1] = offset
            kernel = np.array([(kernel_h - 1 - i, kernel_w - 1 - j) if flip else (i, j) for i, j in positions],
                              dtype=np.int64).reshape(-1, 2)
            size = len(positions) * self.inputs * self.padded
            self.phases.append((offset, kernel, size))
            offset += size
        self.size = offset


def pack_weights(weight, layout):
    """Weights as conv_images reads them: per phase, per block of output channels, (tap, channel, block).

    A numba pass split across threads: a 512x512 3x3 layer's 9 MB of weights take NumPy's transposes 10 ms."""
    packed = np.empty(layout.size, dtype=np.float32)  # pack_weight_blocks writes every value
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    for offset, kernel, size in layout.phases:
        for_ranges(lambda first, stop: pack_weight_blocks(
            flat, packed, offset, kernel, layout.outputs, layout.inputs, layout.kernel_h * layout.kernel_w,
            layout.kernel_w, layout.block, layout.transpose, first, stop),
            layout.padded // layout.block, size, PARALLEL_MIN_COPY)
    return packed


class ConvPass:
    """One convolution over a batch (the forward, or the input gradient's) for one geometry: its plan, register tile,
    compiled module, weight layout and pixel tables.

    The threads take ranges of images, each range with its own scratch (a chunk of images at a time), or, where
    that reads less memory, ranges of blocks of output channels over the whole batch, copied to one scratch
    first: every range of images reads all the weights, every range of blocks all the images (a 512-channel
    layer's 9 MB of weights against its 4x4 images' 2-5 MB)."""

    def __init__(self, plan, images, out_channels, out_pixels, tile_shape, width, weight_shape, transpose, flip):
        self.r_count, v_count = tile_shape
        self.block = v_count * width
        self.module = conv_codegen.load("conv", self.r_count, v_count, width)
        self.layout = WeightLayout(weight_shape, plan, transpose, self.block, flip)
        self.plan = plan.blocked(images, self.block)
        self.images, self.out_channels, self.out_pixels = images, out_channels, out_pixels
        self.flops = 2 * int(plan.phases[:, 0].max(initial=0)) * out_pixels * images * out_channels * int(
            plan.plan[CHANNELS])
        self.tables = {}  # images per range -> PixelTable
        self.batch = None  # (plan of the whole batch in one scratch, that plan once filled, its PixelTable)

    def run(self, source, weight, bias=None, sums=None):
        """The flat NHWC output for the flat NHWC ``source``, weights (OC, C, KH, KW) and ``bias`` (or None); with
        ``sums``, an (N, 2, OC) float64 array, also each image's channel sums of y and y squared."""
        sums = NO_SUMS if sums is None else sums
        weights = pack_weights(weight, self.layout)
        bias_packed = np.zeros(self.layout.padded, dtype=np.float32)
        if bias is not None:
            bias_packed[:self.out_channels] = bias
        y = np.empty(self.images * self.out_pixels * self.out_channels, dtype=np.float32)
        images, plan = self.images, self.plan
        per_range = min(int(plan.plan[CHUNK]), -(-images // for_ranges_parts(self.flops, PARALLEL_MIN_FLOPS)))
        blocks = -(-self.out_channels // self.block)
        if blocks > 1 and blocks * images * int(plan.plan[IMAGE_SIZE]) < -(-images // per_range) * weights.size:
            batch_plan, filled, table = self._batch()
            source = _fill_batch(batch_plan, source, images)

            def channel_blocks(first, stop):
                self.module.conv_images(source, 0, images, filled.plan, filled.taps, filled.phases, table.classes,
                                        table.tap_list, table.pixels, weights, bias_packed, y, self.out_channels,
                                        first * self.block, min(stop * self.block, self.out_channels), sums)

            for_ranges(channel_blocks, blocks, self.flops, PARALLEL_MIN_FLOPS)
            return y
        table = self.tables.get(per_range)
        if table is None:
            table = self.tables[per_range] = PixelTable(plan, self.r_count, per_range)

        def image_ranges(first, stop):
            self.module.conv_images(source, first, stop, plan.plan, plan.taps, plan.phases, table.classes,
                                    table.tap_list, table.pixels, weights, bias_packed, y, self.out_channels, 0,
                                    self.out_channels, sums)

        for_ranges(image_ranges, images, self.flops, PARALLEL_MIN_FLOPS)
        return y

    def _batch(self):
        """The plan for the whole batch in one scratch (filled by _fill_batch), the same plan reading that scratch in
        place, and its PixelTable."""
        if self.batch is None:
            batch_plan = copy_plan(self.plan)
            batch_plan.plan[CHUNK] = self.images
            self.batch = batch_plan, in_place(batch_plan), PixelTable(batch_plan, self.r_count, self.images)
        return self.batch


def copy_plan(plan):
    copy = object.__new__(Plan)
    copy.plan, copy.taps, copy.phases, copy.positions = plan.plan.copy(), plan.taps, plan.phases.copy(), plan.positions
    return copy


def in_place(plan):
    """``plan`` reading a scratch that _fill_batch filled: image n at n * image_size, in place."""
    filled = copy_plan(plan)
    filled.plan[MODE] = IN_PLACE
    return filled


def _fill_batch(plan, source, images):
    """The planes of every image in one scratch array (filled in parallel), which in_place(plan) reads.
    ``source`` itself in IN_PLACE mode."""
    if plan.plan[MODE] == IN_PLACE:
        return source
    image_size = int(plan.plan[IMAGE_SIZE])
    scratch = np.empty(images * image_size + int(plan.plan[SLACK]), dtype=np.float32)
    scratch[images * image_size:] = 0

    def fill(first, stop):  # zeros first (the padding), then the pixels; each range while its part is in cache
        scratch[first * image_size:stop * image_size] = 0
        fill_batch(scratch, source, first, stop, plan.plan)

    for_ranges(fill, images, scratch.size, PARALLEL_MIN_COPY)
    return scratch


def _nhwc(x):
    """The flat float32 NHWC memory of an (N, C, H, W) array (a view when x is channels-last, else a copy)."""
    return x.transpose(0, 2, 3, 1).reshape(-1)


def conv_forward(x, weight, bias, stride, padding, dilation, width=None, flipped=False, channel_sums=False):
    """y = conv2d(x, weight, bias) for float32 (N, C, H, W) x: an (N, OC, OH, OW) channels-last array.

    ``flipped``: convolve with weight's kernel rotated by 180 degrees and its two channel axes swapped (the
    input gradient's convolution).  ``channel_sums``: return (y, sums) instead, sums the (2, OC) float64 sums of y
    and of y squared over the batch and pixels, taken in the output pass (see channel_sums in conv_codegen)."""
    width = width or simd.HOST_WIDTH
    oc = weight.shape[1] if flipped else weight.shape[0]
    layer = prepared(_forward_pass, x.shape, weight.shape, tuple(stride), tuple(padding), tuple(dilation), width,
                     flipped, tile(CONV_TILES, oc, width), _blocking())
    per_image = np.empty((x.shape[0], 2, oc)) if channel_sums else None
    (oh, ow), y = layer.out_hw, layer.run(_nhwc(x), weight, bias, per_image)
    y = y.reshape(x.shape[0], oh, ow, oc).transpose(0, 3, 1, 2)
    return (y, per_image.sum(axis=0)) if channel_sums else y


NO_SUMS = np.zeros((0, 2, 0))  # conv_images' sums when none are wanted


def _forward_pass(x_shape, weight_shape, stride, padding, dilation, width, flipped, tile_shape, _):
    n, c, h, w = x_shape
    oc = weight_shape[1] if flipped else weight_shape[0]
    plan, out_hw = forward_plan((n, h, w, c), weight_shape[2:], stride, padding, dilation, tile_shape[0])
    layer = ConvPass(plan, n, oc, out_hw[0] * out_hw[1], tile_shape, width, weight_shape, flipped, flipped)
    layer.out_hw = out_hw
    return layer


def conv_input_grad(g, weight, input_shape, stride, padding, dilation, width=None):
    """dL/dx (N, C, H, W), channels-last, of y = conv2d(x, weight) for float32 dL/dy ``g``."""
    width = width or simd.HOST_WIDTH
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    (kh, kw), (dh, dw) = weight.shape[2:], dilation
    reach = (dh * (kh - 1), dh * (kh - 1), dw * (kw - 1), dw * (kw - 1))
    if stride == (1, 1) and all(p <= r for p, r in zip(padding, reach)):
        # the forward convolution of g, padded by reach - padding, with the flipped kernel, channels swapped
        return conv_forward(g, weight, None, (1, 1), tuple(r - p for p, r in zip(padding, reach)), dilation, width,
                            flipped=True)
    n, c, h, w = input_shape
    layer = prepared(_input_grad_pass, g.shape, weight.shape, tuple(input_shape), stride, padding, dilation, width,
                     tile(CONV_TILES, c, width), _blocking())
    return layer.run(_nhwc(g), weight).reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _input_grad_pass(g_shape, weight_shape, input_shape, stride, padding, dilation, width, tile_shape, _):
    n, c, h, w = input_shape
    _, oc, oh, ow = g_shape
    plan = input_grad_plan((n, oh, ow, oc), (h, w), weight_shape[2:], stride, padding, dilation, tile_shape[0])
    return ConvPass(plan, n, c, h * w, tile_shape, width, weight_shape, True, False)


def conv_weight_grad(x, g, weight_shape, stride, padding, dilation, width=None, later=False):
    """dL/dW (OC, C, KH, KW) of y = conv2d(x, W) for float32 x and dL/dy ``g``; ``later``: started on the pool's
    workers, an object whose ``result()`` is dL/dW (threads.map_ranges_later)."""
    width = width or simd.HOST_WIDTH
    if g.size == 0:
        dw = np.zeros(weight_shape, dtype=np.float32)
        return Ready(dw) if later else dw
    oc, c, kh, kw = weight_shape
    rows = kh * kw * c
    tile_shape = min(tile(WEIGHT_GRAD_TILES, oc, width), key=lambda candidate: round_up(rows, candidate[0]))
    layer = prepared(WeightGradPass, x.shape, g.shape, tuple(weight_shape), tuple(stride), tuple(padding),
                     tuple(dilation), width, tile_shape, _blocking())
    pending = layer.run(_nhwc(x), _nhwc(g))
    return pending if later else pending.result()


class WeightGradPass:
    """The weight gradient for one geometry: its plan, register tile, compiled module and the tables of the pixels
    each tile reads (see conv_weight_grad)."""

    def __init__(self, x_shape, g_shape, weight_shape, stride, padding, dilation, width, tile_shape, _):
        oc, c, kh, kw = self.weight_shape = weight_shape
        n, _, h, w = x_shape
        _, _, oh, ow = g_shape
        self.rows, (r_count, v_count) = kh * kw * c, tile_shape
        self.block = v_count * width
        self.ocp = round_up(oc, self.block)
        if (kh, kw) == (1, 1) and not any(padding):  # read x itself, every s-th pixel of every s-th row: no copy
            plan, _ = forward_plan((n, h, w, c), (1, 1), (1, 1), padding, dilation, 1, mode=IN_PLACE)
            row_step, column_step = stride[0] * w, stride[1]
        else:
            plan, _ = forward_plan((n, h, w, c), (kh, kw), stride, padding, dilation, 1)
            row_step, column_step = plan.plan[WV], 1
        self.blocks = self.ocp // self.block
        self.k_pad = round_up(self.rows, r_count)
        self.split_channels = 4 * self.k_pad * self.ocp >= SPLIT_CHANNELS_BYTES and self.blocks > 1
        # the channels of dL/dy one tile reads: one block when the ranges split the channels, else all of them
        read = self.block if self.split_channels else self.ocp
        self.band = max(1, BAND_BYTES // (4 * read))  # output pixels whose dL/dy one tile reads take about BAND_BYTES
        chunk = plan.plan[CHUNK] = max(1, min(n, self.band // (oh * ow)))
        # the src index of each output pixel of a chunk of images
        image, row, column = np.ogrid[:chunk, :oh, :ow]
        pixel = image * plan.plan[IMAGE_SIZE] + (row * row_step + column * column_step) * plan.plan[C_IN]
        self.pixel = pixel.reshape(-1)
        # row k = (tap t, channel c) reads src[q + offset[t]] channel c
        self.offsets = np.zeros(self.k_pad, dtype=np.int64)
        self.offsets[:self.rows] = (plan.taps[0, :kh * kw, None] * plan.plan[C_IN] + np.arange(c)[None, :]).reshape(-1)
        self.module = conv_codegen.load("weight_grad", r_count, v_count, width)
        self.plan, self.filled = plan, in_place(plan)
        self.images, self.out_pixels = n, oh * ow
        self.flops = 2 * self.rows * oc * oh * ow * n

    def run(self, source, g_flat):
        """dL/dW, computed on the pool's workers while the calling thread goes on: threads.map_ranges_later."""
        dw = np.empty(self.weight_shape, dtype=np.float32)
        if self.split_channels:
            return self._by_channel_blocks(source, g_flat, dw)
        return self._by_images(source, g_flat, dw)

    def _by_channel_blocks(self, source, g_flat, dw):
        """A large dW: the ranges take blocks of output channels, each over every image (no partial sums), all
        reading one scratch copy of the batch (filled once, not once per range)."""
        source, block, k_pad, (oc, c, kh, kw) = _fill_batch(self.plan, source, self.images), self.block, self.k_pad, \
            self.weight_shape

        def channel_blocks(first, stop):
            first, stop = first * block, stop * block
            part = np.empty((stop - first) * k_pad, dtype=np.float32)
            self.module.weight_grad_images(source, g_flat, 0, self.images, self.filled.plan, self.offsets, self.pixel,
                                           self.out_pixels, oc, self.band, part, first, stop)
            unpack_weight_grad(part, k_pad, block, kh * kw, c, first, stop, oc, dw.reshape(-1))

        return map_ranges_later(channel_blocks, self.blocks, lambda _: dw, self.flops, PARALLEL_MIN_FLOPS)

    def _by_images(self, source, g_flat, dw):
        """The ranges take images, each summing into its own dW; the partial sums are added in range order, so the
        result does not depend on the number of threads (threads.map_ranges)."""
        block, k_pad, ocp, (oc, c, kh, kw) = self.block, self.k_pad, self.ocp, self.weight_shape

        def images(first, stop):
            part = np.empty(ocp * k_pad, dtype=np.float32)
            self.module.weight_grad_images(source, g_flat, first, stop, self.plan.plan, self.offsets, self.pixel,
                                           self.out_pixels, oc, self.band, part, 0, ocp)
            return part

        def add_and_unpack(parts):
            def blocks(first, stop):  # blocks first..stop-1: the parts added in range order, then unpacked
                span = slice(first * block * k_pad, stop * block * k_pad)
                total = parts[0][span].copy()
                for part in parts[1:]:
                    total += part[span]
                unpack_weight_grad(total, k_pad, block, kh * kw, c, first * block, stop * block, oc, dw.reshape(-1))

            for_ranges(blocks, self.blocks, len(parts) * ocp * k_pad, PARALLEL_MIN_COPY)
            return dw

        return map_ranges_later(images, self.images, add_and_unpack, self.flops, PARALLEL_MIN_FLOPS)
