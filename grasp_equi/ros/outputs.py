"""Which of the model's answers go into ``scored_grasps`` (no rclpy here).

A model answers P(force closure) and, when it has P(held) readouts (``grasp-equi fit-held``), P(held)
too (``GraspScorer.outputs``, default first). ``score`` carries the one chosen by the node parameter
``score_output`` ('' = the model's default); ``score_std`` is that answer's spread (P(held): the held
readouts'; P(force closure): the ensemble's, only with one), absent for a single readout. A model
with both answers also publishes each under its own name (``p_held``, ``p_force_closure``: ``field_name``), so a client reads an
answer by name whatever ``score_output`` is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grasp_equi import keys

FIELD_PREFIX = "p_"  # scored_grasps field of an output: "p_" + output name
SCORE_FIELD = "score"  # the chosen output
STD_FIELD = "score_std"  # its spread
OUTPUT_CHOICES = ("", *keys.OUTPUTS)  # values of the score_output parameter ('' = the model's default)


def field_name(output: str) -> str:
    """The ``scored_grasps`` field of ``output`` (``keys.OUTPUTS``): ``"p_held"``, ``"p_force_closure"``."""
    return FIELD_PREFIX + output


def resolve_output(choice: str, available: tuple[str, ...], model: str) -> str:
    """The output ``score`` carries for the ``score_output`` value ``choice`` ('' = ``available[0]``);
    ``ValueError`` with the reason when the model ``model`` lacks it or the name is unknown."""
    if choice not in OUTPUT_CHOICES:
        raise ValueError(f"score_output must be one of {list(OUTPUT_CHOICES)} ('' = the model's default); "
                         f"got {choice!r}")
    if choice and choice not in available:
        hint = " (fit P(held) readouts with `grasp-equi fit-held`)" if choice == keys.OUTPUT_HELD else ""
        raise ValueError(f"score_output {choice!r} is not available: model {model} answers only "
                         f"{list(available)}{hint}")
    return choice or available[0]


def has_spread(scorer, output: str) -> bool:
    """True when ``scorer`` gives a spread for ``output``: the spread of two or more readouts, P(held)'s or
    (P(force closure)) an ensemble's; a single readout's is NaN everywhere, so none is published."""
    readouts = getattr(scorer.model, "held" if output == keys.OUTPUT_HELD else "ensemble", None)
    return readouts is not None and readouts.members > 1


@dataclass
class Answers:
    """Per grasp ``[G]`` float32: ``score`` (the chosen output), its ``spread`` (None when the model
    gives none) and ``named`` (field name -> values) for every output of a model with several."""

    score: np.ndarray
    spread: np.ndarray | None = None
    named: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, size: int, spread: bool, names: list[str]) -> "Answers":
        """All-NaN answers for ``size`` rows (poses: filled where a pose is scored)."""
        nan = lambda: np.full(size, np.nan, dtype=np.float32)  # noqa: E731
        return cls(nan(), nan() if spread else None, {name: nan() for name in names})

    def put(self, rows: np.ndarray, other: "Answers") -> None:
        """Write ``other`` (``[len(rows)]`` each) into ``rows`` of these answers."""
        self.score[rows] = other.score
        if self.spread is not None and other.spread is not None:
            self.spread[rows] = other.spread
        for name, values in other.named.items():
            self.named[name][rows] = values

    def columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``scored_grasps`` columns: each answer at ``rows`` (index of each message row's grasp)."""
        out = {SCORE_FIELD: self.score[rows].astype(np.float32)}
        if self.spread is not None:
            out[STD_FIELD] = self.spread[rows].astype(np.float32)
        out.update({name: values[rows].astype(np.float32) for name, values in self.named.items()})
        return out


def named_fields(scorer) -> list[str]:
    """The per-output fields ``scorer``'s answers carry (none for a model with a single output)."""
    return [field_name(o) for o in scorer.outputs] if len(scorer.outputs) > 1 else []


def score_all(scorer, encoded, grasps, output: str, known: np.ndarray | None = None) -> Answers:
    """Every answer for ``grasps`` (``(G, K, 3)`` or a list of ``(K_i, 3)``) on the encoded cloud:
    ``output`` with its spread when there is one, and each output by name when the model has several.
    ``known``: ``output``'s scores ``[G]`` already computed (a planner's ranking), used as they are (no
    spread then). ``ValueError`` for bad grasps (as ``GraspScorer.score_encoded``)."""
    if known is not None:
        score, spread = np.asarray(known, dtype=np.float32), None
    elif has_spread(scorer, output):
        score, spread = scorer.score_encoded(encoded, grasps, return_std=True, output=output)
    else:
        score, spread = scorer.score_encoded(encoded, grasps, output=output), None
    answers = Answers(score, spread)
    for name in named_fields(scorer):
        other = name[len(FIELD_PREFIX):]
        answers.named[name] = score if other == output else scorer.score_encoded(encoded, grasps, output=other)
    return answers
