"""converters/sense_cnn.py against a PyTorch mirror of quic/sense's StridedInflatedEfficientNet.

The mirror below is written from the original's structure (module names -> state-dict keys,
Conv2d-over-3-stacked-frames temporal conv with a zero internal state of 3 - stride frames, frame
selection by stride, residual realignment, head ReLU6 dropped for the feature). Random weights,
eval mode. Our converted model must reproduce it, both on a whole clip and when PyTorch is fed
4 frames at a time keeping its internal state (how the sense engine runs)."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from biocoach_jax.models import vision
from biocoach_jax.models.vision_config import make_config
from converters import sense_cnn

# Same config and clip length as test_vision_model, so the jitted forward compiles once.
TINY = make_config(width=0.25, depth=0.34, out_channels=24, frame_size=(39, 25))
T = 14  # not a multiple of 4: the trailing 2 frames give no step in either implementation


class TemporalConvAs2d(nn.Conv2d):
    """Sense's SteppableConv3dAs2d with kernel (3, 1, 1): zero state of 3 - stride frames."""

    def __init__(self, cin, cout, tstride):
        super().__init__(3 * cin, cout, 1)
        self.tstride, self.state = tstride, None

    def forward(self, x):  # x (T, C, H, W)
        if self.state is None:
            self.state = x.new_zeros((3 - self.tstride, *x.shape[1:]))
        x = torch.cat([self.state, x])
        self.state = x[-(3 - self.tstride):]
        n = x.shape[0]
        x = torch.cat([x[o:n - 2 + o] for o in range(3)], dim=1)[::self.tstride]
        return super().forward(x)


def conv_relu(cin, cout, k, stride=1, groups=1, layer=None):
    conv = layer if layer is not None else nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups)
    return nn.Sequential(conv, nn.ReLU6())


class TorchBlock(nn.Module):
    def __init__(self, b):
        super().__init__()
        hid, layers = b.hidden, []
        if b.expand_ratio != 1:
            layer = (TemporalConvAs2d(b.in_channels, hid, b.time_stride) if b.temporal_shift
                     else nn.Conv2d(b.in_channels, hid, 1))
            layers.append(conv_relu(b.in_channels, hid, 1, layer=layer))
        layers += [conv_relu(hid, hid, b.kernel, b.spatial_stride, groups=hid),
                   nn.Conv2d(hid, b.out_channels, 1)]
        self.conv = nn.Sequential(*layers)
        self.use_residual, self.tstride = b.use_residual, b.temporal_stride

    def forward(self, x):
        y = self.conv(x)
        if self.use_residual:
            idx = [-1 - 2 * i for i in range(y.shape[0])][::-1] if self.tstride else list(
                range(x.shape[0] - y.shape[0], x.shape[0]))
            y = y + x[idx]
        return y


class TorchSense(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        blocks = cfg.blocks()
        self.cnn = nn.Sequential(conv_relu(3, cfg.stem_channels, 3, 2), *[TorchBlock(b) for b in blocks],
                                 conv_relu(blocks[-1].out_channels, cfg.out_channels, 1))

    def features(self, frames):  # (T, 3, H, W) -> (T/4, C, h, w), head ReLU6 dropped
        return self.cnn[-1][0](self.cnn[:-1](frames))

    def reset(self):
        for m in self.modules():
            if isinstance(m, TemporalConvAs2d):
                m.state = None


@pytest.fixture(scope="module")
def torch_model():
    seed = int(np.random.default_rng().integers(1 << 31))
    print(f"[torch seed {seed}]")
    torch.manual_seed(seed)
    net = TorchSense(TINY).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.2)  # non-zero biases make zero-padding vs zero-frames differ
    return net


@pytest.fixture(scope="module")
def converted(torch_model):
    return sense_cnn.load_sense_state_dict(vision.abstract_vision_cnn(TINY), torch_model.state_dict())


def _run_torch(net, clip, chunk=None):
    """clip (T, H, W, 3) -> (T/4, h, w, C); whole clip or `chunk` frames per call, keeping state."""
    net.reset()
    x = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        parts = [net.features(x[i:i + (chunk or len(x))]) for i in range(0, len(x), chunk or len(x))]
    return torch.cat(parts).numpy().transpose(0, 2, 3, 1)


def test_key_names_match_the_mirror(torch_model, converted):
    keys = set(sense_cnn.sense_key_map(converted))
    assert keys == set(torch_model.state_dict())
    assert "cnn.3.conv.0.0.weight" in keys and "cnn.1.conv.1.weight" in keys  # shift / no-expand


def test_converted_equals_pytorch(torch_model, converted, rng):
    clip = rng.uniform(0.0, 1.0, (2, T, *TINY.frame_size, 3)).astype(np.float32)
    ours = np.asarray(vision.jit_forward(converted)(clip))
    for b in range(2):
        ref = _run_torch(torch_model, clip[b])
        assert ref.shape == ours[b].shape == (T // 4, 2, 1, 24)
        assert ref.std() > 1e-2
        np.testing.assert_allclose(ours[b], ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))
        # The sense engine feeds 4 frames per call; its stateful result is the same features.
        np.testing.assert_allclose(_run_torch(torch_model, clip[b, :12], chunk=4), ref, rtol=0, atol=1e-5)


def test_bad_state_dict_lists_every_problem(torch_model, converted):
    sd = {k: v.clone() for k, v in torch_model.state_dict().items()}
    del sd["cnn.2.conv.1.0.weight"]
    sd["cnn.99.weight"] = torch.zeros(3)
    sd["cnn.3.conv.0.0.weight"] = sd["cnn.3.conv.0.0.weight"][:, :-1]
    sd["cnn.0.0.bias"][0] = float("nan")
    before = np.asarray(converted.head.kernel[...]).copy()
    with pytest.raises(sense_cnn.SenseCheckpointError) as e:
        sense_cnn.load_sense_state_dict(converted, sd, source="ckpt.pth")
    msg = str(e.value)
    assert msg.startswith("ckpt.pth: 4 problem(s)")
    for needle in ("missing key cnn.2.conv.1.0.weight", "unexpected key cnn.99.weight",
                   "cnn.3.conv.0.0.weight: shape", "cnn.0.0.bias: contains NaN"):
        assert needle in msg, msg
    np.testing.assert_array_equal(np.asarray(converted.head.kernel[...]), before)  # untouched


def test_cli_round_trip_and_errors(torch_model, converted, tmp_path, rng):
    # A wrapped, prefixed checkpoint (as DataParallel / Lightning save them) is accepted.
    sd = {f"module.{k}": v for k, v in torch_model.state_dict().items()}
    torch.save({"state_dict": sd}, tmp_path / "sense.pth")
    (tmp_path / "cfg.json").write_text(json.dumps(TINY.to_dict()))
    out = tmp_path / "out"
    assert sense_cnn.main(["--ckpt", str(tmp_path / "sense.pth"), "--out", str(out),
                           "--config", str(tmp_path / "cfg.json")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "params.npz"]  # no temp files
    loaded = sense_cnn.load_converted(out)
    assert loaded.config == TINY
    clip = rng.uniform(0.0, 1.0, (2, T, *TINY.frame_size, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(vision.jit_forward(loaded)(clip)),
                                  np.asarray(vision.jit_forward(converted)(clip)))

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    bad_out = tmp_path / "bad"
    with pytest.raises(sense_cnn.SenseCheckpointError, match="junk.pth: not a readable"):
        sense_cnn.main(["--ckpt", str(tmp_path / "junk.pth"), "--out", str(bad_out)])
    with pytest.raises(sense_cnn.SenseCheckpointError, match=r"(?s)sense.pth: \d+ problem.*missing key"):
        sense_cnn.main(["--ckpt", str(tmp_path / "sense.pth"), "--out", str(bad_out)])  # full config
    assert not bad_out.exists()
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        sense_cnn.main(["--ckpt", str(tmp_path / "nope.pth"), "--out", str(bad_out)])

    with np.load(out / "params.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["head/kernel"] = arrays["head/kernel"][..., :-1]
    np.savez(out / "params.npz", **arrays)
    with pytest.raises(ValueError, match=r"params.npz: does not match config.json:\n  head/kernel"):
        sense_cnn.load_converted(out)
