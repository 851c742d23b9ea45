"""Fixtures for the photo tests: synthetic pictures and a tiny random depth model (both formats).

The depth model is a randomly initialised Depth Anything (transformers) with a 32-wide, 4-layer
DINOv2 backbone, saved inside the test session as a Hugging Face folder and exported to ONNX;
nothing is downloaded (``HF_HUB_OFFLINE=1``).
"""
from __future__ import annotations

import os

import numpy as np
import pytest


def _tiny_model():
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=518, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                              reassemble_hidden_size=32, head_hidden_size=8)
    model = DepthAnythingForDepthEstimation(cfg).eval()
    with torch.no_grad():  # a random head outputs ~1e-6; make the output O(1) so comparisons mean something
        for mod in model.head.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.normal_(mod.weight, std=0.5)
                torch.nn.init.constant_(mod.bias, 0.5)
        torch.nn.init.normal_(model.head.conv3.weight, std=0.3)  # mostly above the final ReLU
        torch.nn.init.constant_(model.head.conv3.bias, 2.0)
    return model


@pytest.fixture(scope="session")
def tiny_depth_model(tmp_path_factory):
    """(torch module returning predicted_depth, HF folder path, ONNX file path)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import DPTImageProcessor

    root = tmp_path_factory.mktemp("tiny_depth")
    model = _tiny_model()
    folder = root / "hf_model"
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      resample=3, do_pad=False, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)

    class Head(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).predicted_depth

    net = Head(model).eval()
    onnx_path = root / "tiny_depth.onnx"
    x = torch.randn(1, 3, 126, 168)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(onnx_path), input_names=["pixel_values"], output_names=["predicted_depth"],
                          dynamic_axes={"pixel_values": {2: "h", 3: "w"}}, dynamo=False, opset_version=17)
    return net, folder, onnx_path


@pytest.fixture
def photo_scene():
    """``photo_scene(shape, n=256, background='plain') -> (rgb, Shape)``."""
    from medrecon.photo.synthetic import scene, shape_height

    def make(shape: str = "sphere", n: int = 256, background: str = "plain", color=(200, 70, 55)):
        sh = shape_height(shape, n)
        return scene(sh, background, color=color), sh

    return make
