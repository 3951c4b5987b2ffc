"""Class lists as users type them (``0,1,2``, ``0-4``, ``T-shirt/top,Trouser``, ``all``), without importing torch.

Three steps, each in one place: :func:`parse_classes` reads the syntax (numbers and ranges are labels,
anything else is a class name); :class:`~embedder.config.TrainConfig` checks what it can without the data
(:func:`check_class_list`: distinct, non-negative, at least two); once the dataset is loaded,
:func:`resolve_classes` turns names and ``all`` into labels and checks that each is in the dataset.
A number is always a label, never a name: ``7`` is class 7 even where a folder is named ``7``.

Validation classes (``val_classes``) are a count K or a class list in the same syntax (:func:`parse_val_classes`);
:func:`resolve_val_classes` draws the K, seeded, or checks that each named class is one of the requested ones.
"""

from __future__ import annotations

import random

from embedder.errors import ConfigError, quote

ALL = "all"  # every class of the dataset
NONE = "none"  # no labelled class: a training on an unlabelled pool alone (--classes none --unlabelled ...)
DIGIT_NAMES = [str(d) for d in range(10)]  # the class names of the digit datasets: label i is named "i"
ClassList = list[int | str]  # labels and names as given, or [ALL]


def parse_classes(text: str, param: str = "classes") -> ClassList:
    """Parse ``"0,1,2"``, ``"0-4"``, ``"0-2,7"``, ``"T-shirt/top,Trouser"``, ``"all"`` or ``"none"`` (``[]``; for
    ``classes`` only), in the order given.

    ``param`` is the option an error names (``classes``, or ``val_classes`` for a list of validation classes)."""
    if not text or not text.strip():
        raise ConfigError(param, f"{{{param}}} is empty: give class labels like 0,1,2, a range like 0-4, or names")
    if text.strip() == ALL:
        return [ALL]
    if text.strip() == NONE and param == "classes":
        return []
    classes: ClassList = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ConfigError(param, f"{{{param}}}: {quote(text)} holds an empty item: '' is not a class label")
        classes.extend(_labels_or_name(part, param))
    return classes


def _labels_or_name(part: str, param: str) -> ClassList:
    lo, sep, hi = part.partition("-")
    if sep and _is_int(lo) and _is_int(hi):
        if int(hi) < int(lo):
            raise ConfigError(param, f"{{{param}}}: range {quote(part)} runs backwards")
        return list(range(int(lo), int(hi) + 1))
    return [int(part)] if _is_int(part) else [part]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def check_class_list(classes: ClassList, param: str = "classes") -> None:
    """Raise :class:`ConfigError` unless ``classes`` can name two or more distinct classes (or is ``[ALL]``, or
    ``[]`` for ``classes``: none, which the training allows beside an unlabelled pool alone)."""
    if classes == [ALL] or (classes == [] and param == "classes"):
        return
    seen: set[int | str] = set()
    for value in classes:
        if isinstance(value, int) and value < 0:
            raise ConfigError(param, f"{{{param}}}: {value} is negative; class labels start at 0")
        if value == ALL:
            raise ConfigError(param, f"{{{param}}}: 'all' stands alone; it cannot be mixed with other classes")
        if value in seen:
            raise ConfigError(param, f"{{{param}}}: class {quote(value)} is given twice")
        seen.add(value)
    if len(classes) < 2:
        raise ConfigError(param, _AT_LEAST_TWO[param])


_AT_LEAST_TWO = {
    "classes": "{classes}: a triplet needs at least two classes",
    "val_classes": "{val_classes}: one held-out class makes 1-way episodes, which cannot fail: give 0 or at least 2",
}


def resolve_classes(classes: ClassList, names: list[str], available: list[int], dataset: str) -> list[int]:
    """The sorted labels that ``classes`` name in a dataset whose label ``i`` is called ``names[i]``.

    ``available`` are the labels the dataset has training images of; a class outside them is an error
    that lists what there is.
    """
    if classes == [ALL]:
        return sorted(available)
    labels, missing = [], []
    for value in classes:
        label = value if isinstance(value, int) else (names.index(value) if value in names else None)
        if label is None or label not in available:
            missing.append(value)
        else:
            labels.append(label)
    if missing:
        raise ConfigError("classes", _not_in_dataset(missing, names, available, dataset))
    check_class_list(labels)  # a name and its label may be given together
    return sorted(labels)


def _not_in_dataset(missing: ClassList, names: list[str], available: list[int], dataset: str) -> str:
    if all(names[label] == str(label) for label in available):  # digits: the labels are the names
        shown = f"{min(available)}-{max(available)}"
    else:
        shown = ", ".join(f"{label} {quote(names[label])}" for label in available[:12])
        shown += f", ... ({len(available)} in all)" if len(available) > 12 else ""
    given = ", ".join(quote(v) if isinstance(v, str) else str(v) for v in missing)
    return f"{{classes}}: {given} not in the dataset {quote(dataset)}, which has classes {shown}"


ValClasses = int | ClassList | None  # a count K, a class list, or None: the default (DEFAULT_VAL_SHARE in config)


def parse_val_classes(value: int | str | ClassList | None) -> ValClasses:
    """``val_classes`` as given: ``None`` (the default), a count K (``"6"``), or a class list (``"3,7"``, ``"7-9"``,
    names). A single number is a count; a single label is written as a range, ``7-7``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if _is_int(text) else parse_classes(text, "val_classes")
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise ConfigError("val_classes", f"{{val_classes}} must be a number or a class list, got {quote(value)}")
    if isinstance(value, int):
        if value < 0 or value == 1:
            hint = "is negative" if value < 0 else "would make 1-way episodes, which cannot fail"
            raise ConfigError("val_classes", f"{{val_classes}} {value} {hint}: give 0 (none), 2 or more, or classes")
        return value
    classes = list(value)
    if classes == [ALL]:
        raise ConfigError("val_classes", "{val_classes} cannot be all: the network must train on some classes")
    check_class_list(classes, "val_classes")
    return sorted(classes) if all(isinstance(c, int) for c in classes) else classes


def resolve_val_classes(wanted: int | ClassList, classes: list[int], names: list[str], seed: int) -> list[int]:
    """The sorted labels held out of ``classes`` (the requested training classes' labels) for validation.

    A count K draws K of them at random from ``seed`` (reproducible, and not the last K, which in a folder tree
    would be one script or one kind of thing); a list names them, each one of ``classes``. At least two classes
    must be left to train on.
    """
    if isinstance(wanted, int):
        chosen = sorted(random.Random(seed).sample(sorted(classes), wanted)) if 0 < wanted < len(classes) else []
        count = wanted
    else:
        chosen = sorted(_val_label(value, classes, names) for value in wanted)
        if len(set(chosen)) < len(chosen):  # a name and its label
            raise ConfigError("val_classes", "{val_classes} names a class twice")
        count = len(chosen)
    if count and len(classes) - count < 2:
        raise ConfigError(
            "val_classes",
            f"{{val_classes}} holds out {count} of the {len(classes)} classes of {{classes}}: "
            "at least two must be left to train on",
        )
    return chosen


def _val_label(value: int | str, classes: list[int], names: list[str]) -> int:
    label = value if isinstance(value, int) else (names.index(value) if value in names else None)
    if label is None or not 0 <= label < len(names):
        raise ConfigError("val_classes", f"{{val_classes}}: {quote(value)} is not a class of the dataset")
    if label not in classes:
        shown = quote(value) if isinstance(value, str) else str(value)
        raise ConfigError("val_classes", f"{{val_classes}}: {shown} is not one of the classes of {{classes}}")
    return label
