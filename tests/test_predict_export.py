"""`hands export-onnx` (onnxruntime against PyTorch) and `hands predict` (OBJ and picture from image files)."""
import numpy as np
import pytest
import torch
from PIL import Image

from finetune.models import build_model, save_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("mobrecon_densestack")
    # give the mesh a hand's size so the picture and the root recovery have something to work on
    with torch.no_grad():
        for p in model.decoder.head.parameters():
            p.mul_(50.0)
    return save_model(tmp_path_factory.mktemp("model") / "model.pt", model.eval())


@pytest.mark.parametrize("name", ["mobrecon_densestack", "mobrecon_ghoststack", "cmr_baseline"])
def test_onnxruntime_matches_pytorch(tmp_path, name):
    from finetune.onnx_export import compare, export_onnx, onnx_session

    torch.manual_seed(1)
    model = build_model(name).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    diffs = compare(model, path, batch=2)
    assert set(diffs) == {"vertices", "keypoints_3d", "keypoints_2d"}
    if name == "cmr_baseline":
        # its 2D keypoints are heatmap argmaxes: on an untrained, nearly flat heatmap a 1e-7 difference
        # can move the peak, so only the continuous outputs are compared
        diffs.pop("keypoints_2d")
    assert max(diffs.values()) < 1e-4, diffs
    # the batch axis is dynamic: one graph serves batches of 1 and 3
    sess = onnx_session(path)
    for b in (1, 3):
        out = sess.run(["vertices"], {"image": np.random.rand(b, 3, 128, 128).astype(np.float32)})[0]
        assert out.shape == (b, 778, 3)


def test_cli_export_onnx(model_file, tmp_path, capsys):
    from hands.cli import main

    assert main(["export-onnx", "--model", str(model_file), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "max |onnxruntime - torch|" in capsys.readouterr().out and (tmp_path / "m.onnx").stat().st_size > 1e6


def test_predict_writes_a_mesh_that_projects_onto_the_keypoints(model_file, tmp_path, capsys):
    from finetune.models import load_model
    from hands.cli import main

    rgb = (np.random.default_rng(0).random((150, 200, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "hand.png")
    assert main(["predict", "--model", str(model_file), str(tmp_path / "hand.png"), "--out", str(tmp_path / "out"),
                 "--focal", "220"]) == 0
    obj = (tmp_path / "out" / "hand.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == 778
    model = load_model(model_file)
    assert sum(line.startswith("f ") for line in obj) == len(model.faces)
    pic = Image.open(tmp_path / "out" / "hand.png")
    assert pic.size == (200, 150)
    # a file that is not an image is named
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert main(["predict", "--model", str(model_file), str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")]) == 2
    assert "bad.png" in capsys.readouterr().err


def test_crop_of_a_box_and_of_the_whole_image():
    from finetune.predict import crop_of

    A = crop_of(100, 200, 128)                   # the 200 px square around the image centre
    assert np.allclose(A @ [99.5, 49.5, 1.0], [63.5, 63.5, 1.0])
    assert A[0, 0] == pytest.approx(128 / 200)
    B = crop_of(100, 200, 128, box=(10, 20, 50, 40))
    assert np.allclose(B @ [30.0, 30.0, 1.0], [63.5, 63.5, 1.0]) and B[0, 0] == pytest.approx(128 / 60)
    with pytest.raises(ValueError, match="box"):
        crop_of(100, 200, 128, box=(50, 20, 10, 40))


class KnownHand(torch.nn.Module):
    """A stand-in model whose output is a known hand at a known place, seen through predict's own crop."""

    input_size = 128

    def __init__(self, hand_model, A, K, t):
        super().__init__()
        with torch.no_grad():
            v, k = hand_model(torch.zeros(1, 48))
        self.v, self.k = v[0].double() - k[0, 0].double(), k[0].double() - k[0, 0].double()
        self.K_crop, self.t = torch.as_tensor(A @ K), torch.as_tensor(t)

    def forward(self, images):
        p = (self.k + self.t) @ self.K_crop.T
        return {"vertices": self.v[None].float(), "keypoints_3d": self.k[None].float(),
                "keypoints_2d": (p[:, :2] / p[:, 2:3])[None].float()}


def test_predict_recovers_the_camera_space_hand_through_the_crop(hand_model):
    from finetune.predict import crop_of, image_camera, predict_image

    H, W, focal, box = 150, 200, 220.0, (60, 30, 140, 110)
    t = np.array([0.02, -0.01, 0.45])
    A, K = crop_of(H, W, 128, box), image_camera(H, W, focal)
    fake = KnownHand(hand_model, A, K, t)
    p = predict_image(fake, np.zeros((H, W, 3), np.uint8), focal=focal, box=box)
    assert np.abs(p["keypoints_3d"] - (fake.k.numpy() + t)).max() < 1e-5          # root recovered
    assert np.abs(p["vertices"] - (fake.v.numpy() + t)).max() < 1e-5
    proj = (fake.k.numpy() + t) @ K.T
    assert np.abs(p["keypoints_2d"] - proj[:, :2] / proj[:, 2:3]).max() < 1e-3   # back in image pixels
    assert p["K"][0, 0] == focal and p["K"][0, 2] == pytest.approx(99.5)
