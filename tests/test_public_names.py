"""Each public name of course_lib has one home: it is listed in the ``__all__`` of one public module (or of a
package and the submodule that defines it), except the re-exports DESIGN.md §3 asks for (a package listing a
name defined in a shared module, such as the box conversions under ``course_lib.localization``)."""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

import course_lib

# name -> the public modules DESIGN.md §3 lists it under, besides its home
DESIGN_REEXPORTS = {
    "model_mode": {"course_lib.models"},
    "box_iou": {"course_lib.localization"},
    "paired_box_iou": {"course_lib.localization"},
    "xyhw_to_xyxy": {"course_lib.localization"},
    "xyxy_to_xyhw": {"course_lib.localization"},
    "JOINT_NAMES": {"course_lib.pose"},
    "FLIP_PAIRS": {"course_lib.pose"},
}


def _public_modules():
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or ".studies." in info.name + "." and parts[-1] != "studies":
            continue
        yield info.name


def test_every_public_name_has_one_home():
    homes = defaultdict(set)
    for name in _public_modules():
        mod = importlib.import_module(name)
        for exported in getattr(mod, "__all__", ()):
            obj = getattr(mod, exported)
            if isinstance(obj, type(course_lib)):  # a subpackage listed in __all__ (e.g. saliency.metrics)
                continue
            homes[(exported, id(obj))].add(name)  # the same object: two functions may share a name
    # a package's __init__ may list what its own submodules define: package and submodule are one home
    roots = {n: {m for m in mods if not any(m.startswith(o + ".") for o in mods)} for (n, _), mods in homes.items()}
    unexpected = {n: sorted(mods) for n, mods in roots.items() if len(mods - DESIGN_REEXPORTS.get(n, set())) > 1}
    assert not unexpected, f"names importable from several public modules (DESIGN §3 lists none of these): {unexpected}"
