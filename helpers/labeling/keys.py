"""The class annotator's keyboard: which key stands for which class, and what the rest do.

Keys reach Python through ipyevents (``keydown`` on the image area ``course-keys``);
:meth:`helpers.labeling.class_annotator.ClassAnnotator.handle_key` looks a key up here
first as a class (:func:`class_keys`), then as a control (:data:`CONTROL_KEYS`).
"""

from __future__ import annotations

# Keys that steer the class annotator, by the method they call; a class named like one
# of the letters gets a digit instead.
CONTROL_KEYS = {
    "u": "toggle_unsure",
    "s": "skip",
    "z": "undo",
    "Backspace": "undo",
    "ArrowLeft": "undo",
    "Enter": "accept",
}


def class_keys(classes: list[str]) -> dict[str, str]:
    """The key for each class: ``{key: class}``, a key never standing for another class.

    A class whose name is one letter or digit (and not a control key ``u``, ``s``,
    ``z``) is its own key: with digit classes, key 3 stores class "3". The other
    classes get the digits still free, 1 ... 9 then 0, in button order; past those a
    class has no key and only its button. Letters are matched without case.
    """
    keys: dict[str, str] = {}
    for name in classes:
        k = str(name).lower()
        if len(k) == 1 and k.isalnum() and k not in CONTROL_KEYS and k not in keys:
            keys[k] = name
    taken = set(keys.values())
    free = [d for d in "1234567890" if d not in keys]
    for name in classes:
        if name not in taken and free:
            keys[free.pop(0)] = name
    return keys


def key_legend(classes: list[str], key_of: dict[str, str], suggestions: bool) -> str:
    """The line above the image that says which keys work, and where the pointer must be."""
    legend = "Keys work with the pointer over the image: "
    if key_of and all(k == str(c).lower() for c, k in key_of.items()):
        example = classes[min(3, len(classes) - 1)]
        legend += f"a class's own key labels it ({key_of[example]} stores class '{example}')"
    elif key_of:
        legend += "the key on a class's button labels it"
    else:
        legend += "no class keys"
    legend += " · u unsure · s skip · z undo"
    return legend + (" · Enter accept the suggestion" if suggestions else "")
