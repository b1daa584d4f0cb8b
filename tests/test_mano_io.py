"""Reading MANO-format pickles without chumpy, as the licensed MANO_RIGHT.pkl is stored."""
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from synth.mano_io import MANO_TIP_VERTEX_IDS, convert_to_plain, load_mano_pickle
from synth.openhand.build import ASSET


def _fake_chumpy():
    """Classes that pickle by reference as chumpy.ch.Ch / chumpy.reordering.Select, as in MANO's file."""
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()  # chumpy state holds more than the array

    class Select(Ch):
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch.Ch, reordering.Select = Ch, Select
    return {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": ch, "chumpy.reordering": reordering}


@pytest.fixture()
def chumpy_mano_file(tmp_path, monkeypatch):
    """OpenHand's arrays written the way MANO_RIGHT.pkl stores them: protocol 2, chumpy
    objects for the dense arrays, a scipy sparse J_regressor, no fingertip ids."""
    with open(ASSET, "rb") as fh:
        src = pickle.load(fh)
    modules = _fake_chumpy()
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    Ch, Select = modules["chumpy.ch"].Ch, modules["chumpy.reordering"].Select
    data = {
        "v_template": Ch(src["v_template"]), "shapedirs": Ch(src["shapedirs"]),
        "posedirs": Ch(src["posedirs"]), "J": Select(src["J"]), "weights": Ch(src["weights"]),
        "f": src["f"], "kintree_table": src["kintree_table"],
        "J_regressor": scipy.sparse.csc_matrix(src["J_regressor"]),
        "hands_components": src["hands_components"], "hands_mean": src["hands_mean"],
        "bs_style": "lbs", "bs_type": "lrotmin",
    }
    path = tmp_path / "MANO_RIGHT.pkl"
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    for name in modules:
        monkeypatch.delitem(sys.modules, name)
    return path, src


def test_plain_unpickling_needs_chumpy(chumpy_mano_file):
    path, _ = chumpy_mano_file
    with pytest.raises(ModuleNotFoundError):
        with open(path, "rb") as fh:
            pickle.load(fh, encoding="latin1")


def test_chumpy_free_loader_unwraps_every_array(chumpy_mano_file):
    path, src = chumpy_mano_file
    data = load_mano_pickle(path)
    for key in ("v_template", "shapedirs", "posedirs", "J", "weights"):
        assert isinstance(data[key], np.ndarray), key
        np.testing.assert_array_equal(data[key], src[key])
    np.testing.assert_array_equal(data["J_regressor"].toarray(), src["J_regressor"].toarray())
    # a 778-vertex file without tip ids is MANO: its known fingertip vertices are used
    assert tuple(data["tip_vertex_ids"]) == MANO_TIP_VERTEX_IDS


def test_converted_copy_reads_with_plain_pickle_and_drives_the_model(chumpy_mano_file, tmp_path):
    from synth.hand_model import HandModel

    path, src = chumpy_mano_file
    out = convert_to_plain(path, tmp_path / "plain" / "MANO_RIGHT.pkl")
    with open(out, "rb") as fh:
        plain = pickle.load(fh)  # no stand-ins needed any more
    np.testing.assert_array_equal(plain["shapedirs"], src["shapedirs"])
    # the chumpy-format file and the bundled asset give the same mesh for the same pose
    a, b = HandModel(path), HandModel("openhand1")
    pose = torch.zeros(1, 48)
    pose[0, 3 * 4 + 2] = 0.8  # bend the middle finger's first joint
    betas = torch.linspace(-1, 1, 10)[None]
    np.testing.assert_allclose(a(pose, betas)[0].numpy(), b(pose, betas)[0].numpy(), atol=1e-6)
    assert a.template_hash == b.template_hash


def test_cli_convert(chumpy_mano_file, tmp_path):
    path, _ = chumpy_mano_file
    dst = tmp_path / "converted.pkl"
    res = subprocess.run([sys.executable, "-m", "hands.cli", "mano", "convert", str(path), str(dst)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert dst.is_file() and "wrote" in res.stdout


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pkl"
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        load_mano_pickle(missing)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(ASSET.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pkl"):
        load_mano_pickle(truncated)
    partial = tmp_path / "partial.pkl"
    with open(partial, "wb") as fh:
        pickle.dump({"v_template": np.zeros((778, 3))}, fh)
    with pytest.raises(ValueError, match="missing keys"):
        load_mano_pickle(partial)


def test_chumpy_object_without_array_is_reported(tmp_path, monkeypatch):
    modules = _fake_chumpy()
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    odd = modules["chumpy.ch"].Ch(np.zeros(3))
    del odd.x
    with open(ASSET, "rb") as fh:
        data = pickle.load(fh)
    data["shapedirs"] = odd
    path = tmp_path / "odd.pkl"
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    for name in modules:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ValueError, match="shapedirs.*chumpy.ch.Ch"):
        load_mano_pickle(path)
