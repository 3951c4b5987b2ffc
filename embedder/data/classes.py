"""Class lists as users type them (``0,1,2``, ``0-4``, ``T-shirt/top,Trouser``, ``all``), without importing torch.

Three steps, each in one place: :func:`parse_classes` reads the syntax (numbers and ranges are labels,
anything else is a class name); :class:`~embedder.config.TrainConfig` checks what it can without the data
(:func:`check_class_list`: distinct, non-negative, at least two); once the dataset is loaded,
:func:`resolve_classes` turns names and ``all`` into labels and checks that each is in the dataset.
A number is always a label, never a name: ``7`` is class 7 even where a folder is named ``7``.
"""

from __future__ import annotations

from embedder.errors import ConfigError, quote

ALL = "all"  # every class of the dataset
ClassList = list[int | str]  # labels and names as given, or [ALL]


def parse_classes(text: str) -> ClassList:
    """Parse ``"0,1,2"``, ``"0-4"``, ``"0-2,7"``, ``"T-shirt/top,Trouser"`` or ``"all"``, in the order given."""
    if not text or not text.strip():
        raise ConfigError("classes", "{classes} is empty: give class labels like 0,1,2, a range like 0-4, or names")
    if text.strip() == ALL:
        return [ALL]
    classes: ClassList = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ConfigError("classes", f"{{classes}}: {quote(text)} holds an empty item: '' is not a class label")
        classes.extend(_labels_or_name(part))
    return classes


def _labels_or_name(part: str) -> ClassList:
    lo, sep, hi = part.partition("-")
    if sep and _is_int(lo) and _is_int(hi):
        if int(hi) < int(lo):
            raise ConfigError("classes", f"{{classes}}: range {quote(part)} runs backwards")
        return list(range(int(lo), int(hi) + 1))
    return [int(part)] if _is_int(part) else [part]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def check_class_list(classes: ClassList) -> None:
    """Raise :class:`ConfigError` unless ``classes`` can name two or more distinct classes (or is ``[ALL]``)."""
    if classes == [ALL]:
        return
    seen: set[int | str] = set()
    for value in classes:
        if isinstance(value, int) and value < 0:
            raise ConfigError("classes", f"{{classes}}: {value} is negative; class labels start at 0")
        if value == ALL:
            raise ConfigError("classes", "{classes}: 'all' stands alone; it cannot be mixed with other classes")
        if value in seen:
            raise ConfigError("classes", f"{{classes}}: class {quote(value)} is given twice")
        seen.add(value)
    if len(classes) < 2:
        raise ConfigError("classes", "{classes}: a triplet needs at least two classes")


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
