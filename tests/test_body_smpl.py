"""SMPL-format model files: a synthetic model written as a chumpy-style .pkl, a plain .pkl and
an .npz, read by SMPLFileModel and by smplx (the oracle for v_shaped and the rest joints)."""
import contextlib
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch

from biocoach_jax.body import (
    SMPL_LANDMARKS, SMPLFileModel, ShapeModel, measure, measure_body)
from biocoach_jax.io_utils import UnsafePickleError
from mesh_helpers import capped_loft

NB = 10  # smplx keeps at most 10 betas for a file with fewer than 300 components
SMPL_PARENTS = [2 ** 32 - 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18,
                19, 20, 21]
SMPLX_VERTEX_IDS = dict(  # smplx's extra keypoints, remapped into a small mesh
    nose=0, reye=1, leye=2, rear=3, lear=4, LBigToe=5, LSmallToe=6, LHeel=7, RBigToe=8,
    RSmallToe=9, RHeel=10, lthumb=11, lindex=12, lmiddle=13, lring=14, lpinky=15, rthumb=16,
    rindex=17, rmiddle=18, rring=19, rpinky=20)


def uv_sphere(n_lat, n_lon, radii):
    """Closed star-shaped mesh: rings at n_lat latitudes (radius per ring) and two poles."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 2)[1:-1]
    lon = 2 * np.pi * np.arange(n_lon) / n_lon
    rings = [radii[i] * np.stack([np.cos(a) * np.cos(lon), np.full(n_lon, np.sin(a)),
                                  -np.cos(a) * np.sin(lon)], 1) for i, a in enumerate(lat)]
    v, f = capped_loft(rings, [0, -radii[0], 0], [0, max(radii), 0])
    return v, f.astype(np.uint32)


@pytest.fixture
def model_dict(rng):
    n_lat, n_lon = int(rng.integers(5, 8)), int(rng.integers(9, 14)) | 1
    v, f = uv_sphere(n_lat, n_lon, rng.uniform(0.3, 0.5, size=n_lat))
    n_v = len(v)
    shapedirs = rng.normal(scale=0.01, size=(n_v, 3, NB))
    shapedirs[:, :, 0] = v  # beta0 = uniform scaling: an analytic check of the measurements
    j_reg = rng.uniform(size=(24, n_v)) * (rng.uniform(size=(24, n_v)) < 0.2)
    j_reg[:, 0] += 1e-3
    weights = rng.uniform(size=(n_v, 24))
    lm = dict(head_top=n_v - 1, heel=n_v - 2, hips=1, waist=(n_lat // 2) * n_lon + 2,
              chest=(n_lat - 2) * n_lon)
    return dict(
        v_template=v, shapedirs=shapedirs, f=f,
        J_regressor=j_reg / j_reg.sum(1, keepdims=True),
        weights=weights / weights.sum(1, keepdims=True),
        kintree_table=np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.uint32),
        posedirs=rng.normal(scale=1e-3, size=(n_v, 3, 207)),
    ), lm


@contextlib.contextmanager
def fake_chumpy():
    """A stand-in `chumpy.ch.Ch` importable only while pickling, like in official SMPL files."""
    ch_pkg, ch_mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_mod.Ch, ch_pkg.ch = Ch, ch_mod
    sys.modules.update({"chumpy": ch_pkg, "chumpy.ch": ch_mod})
    try:
        yield Ch
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def write_official_style_pkl(path, d, protocol):
    with fake_chumpy() as Ch:
        data = {**d, "v_template": Ch(d["v_template"]), "shapedirs": Ch(d["shapedirs"]),
                "posedirs": Ch(d["posedirs"]), "weights": Ch(d["weights"]),
                "J_regressor": scipy.sparse.csc_matrix(d["J_regressor"]),
                "bs_style": "lbs", "bs_type": "lrotmin"}
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    assert b"chumpy.ch" in path.read_bytes() and "chumpy" not in sys.modules


@pytest.fixture
def files(tmp_path, model_dict):
    d, lm = model_dict
    paths = {"chumpy2": tmp_path / "official_p2.pkl", "plain": tmp_path / "plain.pkl",
             "npz": tmp_path / "model.npz"}
    write_official_style_pkl(paths["chumpy2"], d, protocol=2)
    paths["plain"].write_bytes(pickle.dumps(d, protocol=4))
    np.savez(paths["npz"], **d)
    return d, lm, paths


def smplx_vertices_and_joints(smpl, betas):
    with torch.no_grad():
        out = smpl(betas=torch.tensor(betas[None], dtype=torch.float32), return_verts=True)
        blend = smpl.v_template + smplx.lbs.blend_shapes(
            torch.tensor(betas[None], dtype=torch.float32), smpl.shapedirs)
    return out.vertices[0].numpy(), blend[0].numpy(), out.joints[0, :24].numpy()


def test_all_formats_agree_with_smplx(files, rng):
    d, lm, paths = files
    models = {k: SMPLFileModel(p, landmarks=lm) for k, p in paths.items()}
    betas = rng.normal(size=NB)
    ours = {k: m.v_shaped(betas) for k, m in models.items()}
    for k in ours:
        np.testing.assert_allclose(ours[k], ours["npz"], rtol=0, atol=1e-12, err_msg=k)
        assert isinstance(models[k], ShapeModel) and models[k].num_betas == NB
        np.testing.assert_array_equal(models[k].faces, d["f"].astype(np.int64))
    np.testing.assert_array_equal(models["chumpy2"].kintree_table[0, 1:], SMPL_PARENTS[1:])

    by_path = smplx.SMPL(model_path=str(paths["plain"]), vertex_ids=SMPLX_VERTEX_IDS)
    npz = dict(np.load(paths["npz"]))
    by_struct = smplx.SMPL(model_path="", data_struct=smplx.utils.Struct(**npz),
                           vertex_ids=SMPLX_VERTEX_IDS)
    for smpl in (by_path, by_struct):
        posed, blend, joints = smplx_vertices_and_joints(smpl, betas)
        # zero pose: the skinned output is the shaped template itself
        np.testing.assert_allclose(ours["chumpy2"], blend, atol=2e-6)
        np.testing.assert_allclose(ours["chumpy2"], posed, atol=2e-6)
        np.testing.assert_allclose(models["chumpy2"].joints(betas), joints, atol=2e-6)


def test_protocol0_chumpy_pickle(tmp_path, model_dict, rng):
    """Python-2-era pickles name copy_reg._reconstructor and __builtin__.object."""
    d, lm = model_dict
    write_official_style_pkl(tmp_path / "p0.pkl", d, protocol=0)
    assert b"copy_reg" in (tmp_path / "p0.pkl").read_bytes()
    model = SMPLFileModel(tmp_path / "p0.pkl", landmarks=lm)
    betas = rng.normal(size=NB)
    np.testing.assert_allclose(model.v_shaped(betas),
                               d["v_template"] + np.einsum("vcb,b->vc", d["shapedirs"], betas))
    np.testing.assert_allclose(model.J_regressor, d["J_regressor"])


def test_fewer_betas_and_truncated_basis(files, rng):
    d, lm, paths = files
    full = SMPLFileModel(paths["npz"], landmarks=lm)
    b = rng.normal(size=4)
    np.testing.assert_allclose(full.v_shaped(b), full.v_shaped(np.pad(b, (0, NB - 4))))
    four = SMPLFileModel(paths["chumpy2"], landmarks=lm, num_betas=4)
    assert four.num_betas == 4
    np.testing.assert_allclose(four.v_shaped(b), full.v_shaped(b), atol=1e-12)
    with pytest.raises(ValueError, match="got 5 betas but the model has 4"):
        four.v_shaped(np.ones(5))
    with pytest.raises(ValueError, match="num_betas=11"):
        SMPLFileModel(paths["npz"], landmarks=lm, num_betas=11)


def test_measure_body_scales_with_the_scaling_direction(files, rng):
    """shapedirs[..., 0] = v_template, so beta0 = s - 1 scales the body by s."""
    d, lm, paths = files
    model = SMPLFileModel(paths["chumpy2"], landmarks=lm)
    base = measure(d["v_template"], d["f"], lm)
    s = rng.uniform(0.8, 1.3)
    got = measure_body(model, np.r_[s - 1.0, np.zeros(NB - 1)])
    np.testing.assert_allclose(
        [got.height_m, got.chest_m, got.waist_m, got.hip_m, got.mass_kg],
        [s * base.height_m, s * base.chest_m, s * base.waist_m, s * base.hip_m,
         s ** 3 * base.mass_kg], rtol=1e-9)
    assert base.mass_kg > 0 and base.chest_m > 0


def test_default_landmarks_need_smpl_topology(tmp_path, rng):
    n_v = 6890
    d = dict(v_template=rng.normal(size=(n_v, 3)), shapedirs=np.zeros((n_v, 3, 2)),
             f=rng.integers(0, n_v, size=(50, 3)))
    np.savez(tmp_path / "smpl_like.npz", **d)
    assert SMPLFileModel(tmp_path / "smpl_like.npz").landmarks == SMPL_LANDMARKS
    small = {**d, "v_template": d["v_template"][:100], "shapedirs": d["shapedirs"][:100],
             "f": d["f"] % 100}
    np.savez(tmp_path / "small.npz", **small)
    with pytest.raises(ValueError, match=r"small\.npz: mesh has 100 vertices.*landmarks="):
        SMPLFileModel(tmp_path / "small.npz")


# ---------------------------------------------------------------- errors
def test_missing_key_and_bad_shapes(tmp_path, model_dict):
    d, lm = model_dict
    no_dirs = {k: v for k, v in d.items() if k != "shapedirs"}
    np.savez(tmp_path / "a.npz", **no_dirs)
    with pytest.raises(ValueError, match=r"a\.npz: missing key 'shapedirs'"):
        SMPLFileModel(tmp_path / "a.npz", landmarks=lm)
    bad = {**d, "shapedirs": d["shapedirs"][:-1]}
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match=r"b\.pkl: key 'shapedirs' has shape .*expected \("):
        SMPLFileModel(tmp_path / "b.pkl", landmarks=lm)
    bad = {**d, "J_regressor": d["J_regressor"][:, 1:]}
    np.savez(tmp_path / "c.npz", **bad)
    with pytest.raises(ValueError, match=r"c\.npz: key 'J_regressor' has shape"):
        SMPLFileModel(tmp_path / "c.npz", landmarks=lm)
    bad = {**d, "f": np.concatenate([d["f"], [[0, 1, len(d["v_template"])]]])}
    np.savez(tmp_path / "d.npz", **bad)
    with pytest.raises(ValueError, match=r"d\.npz \(key 'f'\): face index .* out of range"):
        SMPLFileModel(tmp_path / "d.npz", landmarks=lm)
    with pytest.raises(ValueError, match=r"e\.npz: landmark 'chest' = 9999 is out of range"):
        np.savez(tmp_path / "e.npz", **d)
        SMPLFileModel(tmp_path / "e.npz", landmarks={**lm, "chest": 9999})


def test_unreadable_files(tmp_path, model_dict):
    d, lm = model_dict
    with pytest.raises(ValueError, match=r"model\.obj: unsupported model file type"):
        (tmp_path / "model.obj").write_text("v 0 0 0")
        SMPLFileModel(tmp_path / "model.obj")
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        SMPLFileModel(tmp_path / "nope.pkl")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "hook": print}))
    with pytest.raises(UnsafePickleError, match="evil.pkl: refusing to unpickle builtins.print"):
        SMPLFileModel(evil)
    # SMPL-X style extra entries holding objects are skipped; a needed one is an error.
    np.savez(tmp_path / "extra.npz", **d, joint2num=np.array([{"a": 1}], dtype=object))
    np.testing.assert_array_equal(SMPLFileModel(tmp_path / "extra.npz", landmarks=lm).v_template,
                                  d["v_template"])
    np.savez(tmp_path / "obj.npz", **{**d, "v_template": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match=r"obj\.npz: key 'v_template' holds pickled Python"):
        SMPLFileModel(tmp_path / "obj.npz")
    np.savez(tmp_path / "full.npz", **d)
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.npz: corrupt"):
        SMPLFileModel(tmp_path / "cut.npz", landmarks=lm)
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected a pickled dict"):
        SMPLFileModel(tmp_path / "list.pkl")
