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
        assert recipe.description, name  # the one line `python -m course_lib.zoo list` prints
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
    # (a fraction of n images: float32 summation order may move an image on the decision boundary; allow two)
    n = record["settings"]["data"]["n_heldout"]
    assert zoo.evaluate(name, device="cpu")["heldout_accuracy"] == pytest.approx(
        record["metrics"]["heldout_accuracy"], abs=2 / n)
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
