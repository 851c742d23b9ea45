"""The slab-stitched sliding-window engine against MONAI's own ``sliding_window_inference``.

On the CPU path (float32 everywhere) the label maps must be identical to
``argmax(sliding_window_inference(...))`` for every blending mode, overlap, padding, batch size,
slab axis and memory layout.
"""
from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNet, UNet

from medrecon.segment.inference import plan_windows, prepare_network, sliding_window_labels


@pytest.fixture(scope="module")
def segresnet():
    torch.manual_seed(0)
    return SegResNet(spatial_dims=3, in_channels=1, out_channels=7, init_filters=8,
                     blocks_down=(1, 1), blocks_up=(1,)).eval()


def _reference(net, x, roi, bs, **kw):
    with torch.no_grad():
        return sliding_window_inference(x[None], roi, bs, net, **kw).argmax(1)[0]


CASES = [
    # shape, roi, overlap, mode, batch, padding_mode
    pytest.param((40, 37, 33), (16, 16, 16), 0.25, "constant", 3, "constant", marks=pytest.mark.slow),  # 10 s CPU
    pytest.param((20, 45, 18), (24, 16, 16), 0.5, "gaussian", 2, "constant", marks=pytest.mark.slow),  # 7 s CPU
    ((10, 12, 40), (16, 16, 16), 0.25, "constant", 1, "constant"),   # smaller than the window: padded
    ((12, 30, 30), (16, 16, 16), 0.6, "gaussian", 4, "replicate"),
]


@pytest.mark.parametrize("shape,roi,overlap,mode,bs,pad", CASES)
def test_labels_equal_monai_argmax(segresnet, shape, roi, overlap, mode, bs, pad):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn((1, *shape), generator=g)
    ref = _reference(segresnet, x, roi, bs, overlap=overlap, mode=mode, padding_mode=pad)
    for axis in range(3):
        lab = sliding_window_labels(x, segresnet, roi, overlap=overlap, mode=mode, sw_batch_size=bs,
                                    device="cpu", slab_axis=axis, padding_mode=pad)
        assert lab.shape == shape and lab.dtype == torch.uint8
        assert torch.equal(lab.long(), ref), f"slab axis {axis}"


def test_channels_last_layout_and_prepared_network():
    torch.manual_seed(1)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=4, channels=(8, 16), strides=(2,)).eval()
    x = torch.randn((1, 33, 29, 41))
    ref = _reference(net, x, (16, 16, 16), 2, overlap=0.25)
    pred, kw = prepare_network(net, "cpu", precision="fp32", channels_last=True)
    assert kw == {"amp": False, "channels_last": True}
    lab = sliding_window_labels(x, pred, (16, 16, 16), overlap=0.25, sw_batch_size=2, device="cpu", **kw)
    assert torch.equal(lab.long(), ref)


def test_tuple_output_and_many_classes():
    """Deep-supervision style outputs use the first tensor; > 256 classes give int32 labels."""
    conv = torch.nn.Conv3d(1, 300, 1)

    def net(b):
        return (conv(b), conv(b)[:, :1])

    x = torch.randn((1, 20, 18, 16))
    with torch.no_grad():
        ref = sliding_window_inference(x[None], (8, 8, 8), 3, lambda b: net(b)[0]).argmax(1)[0]
    lab = sliding_window_labels(x, net, (8, 8, 8), sw_batch_size=3, device="cpu")
    assert lab.dtype == torch.int32
    assert torch.equal(lab.long(), ref)


def test_batched_input_and_numpy():
    conv = torch.nn.Conv3d(2, 3, 3, padding=1)
    x = torch.randn((1, 2, 19, 23, 17))
    ref = _reference(conv, x[0], (8, 8, 8), 2, overlap=0.5, mode="gaussian")
    lab = sliding_window_labels(x.numpy(), conv, (8, 8, 8), overlap=0.5, mode="gaussian", device="cpu")
    assert torch.equal(lab.long(), ref)


def test_window_plan_and_buffer_size():
    """The benchmark's case: 196 windows, and an accumulator one window thick along the longest axis
    instead of the whole 105-channel volume."""
    plan = plan_windows((512, 512, 300), 96, 0.25)
    assert plan.n_windows == 7 * 7 * 4
    assert plan.slab_axis == 0
    assert plan.buffer_shape(105) == (105, 96, 512, 300)
    starts = plan.starts[:, plan.slab_axis]
    assert (starts[1:] >= starts[:-1]).all()
    assert set(plan.starts[:, 2].tolist()) == {0, 72, 144, 204}


def test_progress_and_bad_arguments():
    conv = torch.nn.Conv3d(1, 2, 1)
    seen = []
    sliding_window_labels(torch.randn((1, 20, 20, 20)), conv, (10, 10, 10), overlap=0.0, device="cpu",
                          progress=lambda ev: seen.append((ev.done, ev.total)))
    assert seen[-1] == (8, 8) and len(seen) == 2  # default batch of 4 windows
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_labels(torch.randn((1, 8, 8, 8)), conv, (4, 4, 4), overlap=1.0, device="cpu")
    with pytest.raises(ValueError, match="differs from the window"):
        sliding_window_labels(torch.randn((1, 8, 8, 8)), torch.nn.Conv3d(1, 2, 3), (4, 4, 4), device="cpu")
