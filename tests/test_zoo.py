"""course_lib.zoo: recipe discovery, save/verify/load round trip, corruption, the CLI, committed checkpoints."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from torch import nn

from course_lib import zoo
from course_lib.zoo.__main__ import main

COMMITTED = ("shapes_gap", "shapes_gmp")


def _tiny_recipe(name: str = "tiny") -> zoo.Recipe:
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()

    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    def train(model, device, progress):
        from course_lib.training import fit

        h = fit(model, (x, y), epochs=3, lr=0.05, batch_size=16, device=device, progress=progress)
        return {"train_loss": h["train_loss"]}

    def evaluate(model, device):
        from course_lib.training import evaluate_accuracy

        return {"accuracy": evaluate_accuracy(model, (x, y), device)}

    return zoo.Recipe(name, "a tiny test model", build, train, evaluate, {"epochs": 3})


@pytest.fixture
def tiny(monkeypatch):
    recipe = _tiny_recipe()
    monkeypatch.setattr(zoo, "_recipes", lambda: {"tiny": recipe})
    return recipe


def test_recipes_are_discovered():
    found = zoo.names()
    assert set(COMMITTED) <= set(found)
    assert found == sorted(found)
    for name in found:
        recipe = zoo.get_recipe(name)
        assert isinstance(recipe, zoo.Recipe) and recipe.name == name and recipe.description
        json.dumps(recipe.settings)  # settings must be JSON-able: they are saved beside the weights


def test_train_save_verify_load_round_trip(tiny, tmp_path):
    record = zoo.train("tiny", device="cpu", progress=False, root=tmp_path)
    pt = tmp_path / "tiny.pt"
    assert record["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "tiny.json").read_text()) == record
    assert record["settings"] == {"epochs": 3} and record["torch"] == torch.__version__
    model = zoo.load("tiny", device="cpu", root=tmp_path)
    assert not model.training
    state = torch.load(pt, weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert zoo.evaluate("tiny", device="cpu", root=tmp_path) == record["metrics"]


def test_training_is_deterministic_on_cpu(tiny, tmp_path):
    a = zoo.train("tiny", device="cpu", progress=False, root=tmp_path / "a")
    b = zoo.train("tiny", device="cpu", progress=False, root=tmp_path / "b")
    assert a["sha256"] == b["sha256"]


def test_corrupt_checkpoint_is_refused(tiny, tmp_path):
    zoo.train("tiny", device="cpu", progress=False, root=tmp_path)
    pt = tmp_path / "tiny.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(zoo.CheckpointError, match=r"corrupt.*python -m course_lib.zoo train tiny"):
        zoo.load("tiny", root=tmp_path)


def test_missing_checkpoint_and_mismatched_architecture(tiny, tmp_path):
    with pytest.raises(zoo.CheckpointError, match=r"no checkpoint.*python -m course_lib.zoo train tiny"):
        zoo.load("tiny", root=tmp_path)
    # weights of another architecture with a matching hash record: refused with the same hint
    torch.save(nn.Linear(3, 3).state_dict(), tmp_path / "tiny.pt")
    (tmp_path / "tiny.json").write_text(json.dumps({"sha256": zoo.sha256(tmp_path / "tiny.pt")}))
    with pytest.raises(zoo.CheckpointError, match=r"does not fit the recipe's architecture.*zoo train tiny"):
        zoo.load("tiny", root=tmp_path)


def test_unknown_name():
    with pytest.raises(ValueError, match=r"name must be one of the zoo's models.*'nope'"):
        zoo.load("nope")


def test_cli_list_and_evaluate_print_json(tiny, tmp_path, capsys, monkeypatch):
    zoo.train("tiny", device="cpu", progress=False, root=tmp_path)
    monkeypatch.setattr(zoo, "CHECKPOINTS", tmp_path)
    assert main(["list"]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["evaluate", "tiny", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "tiny" and 0.0 <= printed["accuracy"] <= 1.0
    (tmp_path / "tiny.pt").write_bytes(b"garbage")
    assert main(["evaluate", "tiny", "--device", "cpu"]) == 1
    assert "python -m course_lib.zoo train tiny" in capsys.readouterr().err


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_checkpoints(name, tmp_path):
    record = zoo.info(name)
    pt = zoo.CHECKPOINTS / f"{name}.pt"
    assert pt.stat().st_size < 1_000_000
    assert record["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert record["metrics"]["heldout_accuracy"] >= 0.95
    model = zoo.load(name, device="cpu")
    assert not model.training and model.features(torch.rand(1, 3, 64, 64)).shape == (1, 64, 16, 16)
    # recomputed now, on this machine, from data regenerated from its seed
    assert zoo.evaluate(name, device="cpu")["heldout_accuracy"] == pytest.approx(
        record["metrics"]["heldout_accuracy"], abs=0.002)
    shutil.copy(pt, tmp_path / pt.name)  # the committed record also verifies a copy elsewhere
    shutil.copy(zoo.CHECKPOINTS / f"{name}.json", tmp_path)
    zoo.load(name, device="cpu", root=tmp_path)


@pytest.mark.cuda
@pytest.mark.parametrize("name", COMMITTED)
def test_cpu_cuda_parity(name):
    x = torch.rand(8, 3, 64, 64)
    cpu = zoo.load(name, device="cpu")(x)
    gpu = zoo.load(name, device="cuda")(x.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ shapes_lite0: a fine-tuned pretrained network
def test_shapes_lite0_checkpoint_holds_only_what_fine_tuning_changed(tmp_path):
    from course_lib.pretrained import efficientnet_lite0
    from course_lib.zoo.recipes import lite0

    record = zoo.info("shapes_lite0")
    pt = zoo.CHECKPOINTS / "shapes_lite0.pt"
    assert pt.stat().st_size < 3_000_000
    assert record["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    state = torch.load(pt, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model = zoo.load("shapes_lite0", device="cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model(torch.rand(1, 3, 224, 224)).shape == (1, 5)
    assert model.features(torch.rand(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
    # every tensor not in the checkpoint is the weights package's; every stored one is loaded as stored
    reference = efficientnet_lite0().state_dict()
    stored = {f"{k}" for k in lite0.trained_modules(model).state_dict()}
    assert set(state) == stored
    trained_names = {name for name, _ in lite0.trained_modules(model).named_modules()}
    full = model.state_dict()
    prefixes = tuple(f"{n}." for n in lite0.trained_modules(model).keys())
    for key, value in full.items():
        if key.startswith(prefixes):
            assert torch.equal(value, state[key].to(value.dtype)), key
        else:
            assert torch.equal(value, reference[key]), key
    assert trained_names  # non-empty
    # the record states how well it works (held-out seed), and the recipe was chosen on another seed
    m = record["metrics"]
    assert m["heldout_accuracy"] >= 0.9 and m["heldout_pointing_game"] >= 0.5
    assert record["settings"]["val_seed"] != record["settings"]["heldout_seed"] != record["settings"]["train_seed"]


def test_shapes_lite0_restore_is_strict(tmp_path):
    from course_lib.zoo.recipes import lite0

    model = lite0.build()
    state = lite0.export(model)
    lite0.restore(model, state)
    bad = dict(state)
    bad.pop(next(iter(bad)))
    with pytest.raises(KeyError, match="missing"):
        lite0.restore(model, bad)
    with pytest.raises(KeyError, match="unexpected"):
        lite0.restore(model, {**state, "blocks.0.expand.0.weight": torch.zeros(1)})


def test_shapes_lite0_classifies_held_out_images():
    """A quick check on 32 held-out images (the full evaluation is the slow test below)."""
    from course_lib.data import ShapesDataset

    model = zoo.load("shapes_lite0", device="cpu")
    data = ShapesDataset(32, size=224, seed=zoo.info("shapes_lite0")["settings"]["heldout_seed"])
    with torch.no_grad():
        accuracy = float((model(data.images).argmax(1) == data.labels).float().mean())
    assert accuracy >= 0.8


@pytest.mark.slow
def test_shapes_lite0_reproduces_its_recorded_metrics():
    record = zoo.info("shapes_lite0")
    got = zoo.evaluate("shapes_lite0", device="cpu")
    for key, value in record["metrics"].items():
        assert got[key] == pytest.approx(value, abs=0.01), key


# ------------------------------------------ shapes_pretrained_localizer: EfficientNet-Lite0, blocks[8..10] fine-tuned
def test_pretrained_localizer_stores_only_the_fine_tuned_part():
    from course_lib.pretrained import efficientnet_lite0

    record = zoo.info("shapes_pretrained_localizer")
    pt = zoo.CHECKPOINTS / "shapes_pretrained_localizer.pt"
    assert record["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    state = torch.load(pt, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model = zoo.load("shapes_pretrained_localizer", device="cpu")
    assert not model.training
    assert set(state) == set(model.top.state_dict())
    # the frozen part is the weights package's; the first fine-tuned block has moved away from it
    reference = efficientnet_lite0().state_dict()
    lower = model.lower.state_dict()  # normalize (0), stem (1), blocks[0..7] (2)
    for key, value in lower.items():
        ref_key = {"0": "normalize", "1": "stem", "2": "blocks"}[key.split(".")[0]] + key[key.index("."):]
        assert torch.equal(value, reference[ref_key]), key
    first = model.top.blocks[0].expand[0].weight
    assert not torch.allclose(first, reference["blocks.8.expand.0.weight"])
    # a box for every image: (N, 5) class scores and (N, 4) boxes on 64x64 input, as the Localizer
    logits, boxes = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 5) and boxes.shape == (2, 4)


def test_mirrored_feature_cache_mirrors_images_and_boxes(tmp_path, monkeypatch):
    """The recipe's flip copies: features of the mirrored images, and the tight box of the mirrored mask."""
    from course_lib.boxes import mask_to_box
    from course_lib.data import ShapesDataset
    from course_lib.models import frozen_features
    from course_lib.pretrained import efficientnet_lite0
    from course_lib.zoo import _cache as feature_cache
    from course_lib.zoo.recipes import localization as loc

    monkeypatch.setattr(feature_cache, "FEATURE_CACHE", tmp_path)
    settings = {**loc.ZOO_FINETUNE_SETTINGS, "n_train": 4}
    feats, labels, boxes = loc.lite0_block_features(settings, "train", 7, hflip=True)
    data = ShapesDataset(4, size=settings["size"], seed=settings["train_seed"])
    # the box of the mirrored image, measured on its mirrored mask (not by the formula x -> 1 - x)
    torch.testing.assert_close(boxes, mask_to_box(data.masks.flip(-1)), atol=1e-6, rtol=0)
    assert torch.equal(labels, data.labels)
    net = efficientnet_lite0("cpu")
    lower = nn.Sequential(net.normalize, net.stem, net.blocks[:8])
    torch.testing.assert_close(feats, frozen_features(lower, data.images.flip(-1), size=128), atol=1e-5, rtol=0)
    # the training set is the originals followed by their mirrored copies
    both = loc.lite0_training_features(settings, 7)
    assert both[0].shape[0] == 8 and torch.equal(both[0][4:], feats) and torch.equal(both[2][4:], boxes)
    assert loc.ZOO_FINETUNE_SETTINGS["hflip"] and zoo.info("shapes_pretrained_localizer")["settings"]["hflip"]


def test_pretrained_localizer_recipe_rejects_bad_blocks():
    from course_lib.pretrained import EfficientNetLite0
    from course_lib.zoo.recipes.localization import Lite0TopLocalizer

    with pytest.raises(ValueError, match="first"):
        Lite0TopLocalizer(EfficientNetLite0(), first=0, last=10, grid=8)
    with pytest.raises(ValueError, match="grid"):
        Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=0)
    with pytest.raises(ValueError, match="hidden"):
        Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8, hidden=-1)


def test_top_localizer_hidden_box_layer_starts_at_zero_boxes():
    """hidden > 0: Linear -> ReLU -> Linear box head whose last layer starts at zero, so every initial box is 0
    (as with the linear head); hidden = 0 keeps the single linear layer of the stored studies."""
    from course_lib.pretrained import EfficientNetLite0
    from course_lib.zoo.recipes.localization import Lite0TopLocalizer

    a = torch.rand(3, 80, 8, 8)
    deep = Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8, hidden=16).eval()
    assert [type(m).__name__ for m in deep.box] == ["Linear", "ReLU", "Linear"]
    assert deep.box[0].out_features == 16 and deep.box[2].in_features == 16
    assert torch.equal(deep(a)[1], torch.zeros(3, 4))
    flat = Lite0TopLocalizer(EfficientNetLite0(), first=8, last=10, grid=8).eval()
    assert isinstance(flat.box, nn.Linear) and flat.box.in_features == 64 * 4 * 4


@pytest.mark.slow
def test_pretrained_localizer_reproduces_its_recorded_metrics():
    record = zoo.info("shapes_pretrained_localizer")
    got = zoo.evaluate("shapes_pretrained_localizer", device="cpu")
    for key, value in record["metrics"].items():
        assert got[key] == pytest.approx(value, abs=0.005), key
