"""One explanation shown the same way on every page: Original | heatmap | overlay, then what the numbers mean.

The Photo page explains each detected face and the Compare page each misclassified file with
:func:`maskdet.inference.explain.explain`; both lay the result out with :func:`show_explanation`.
"""

from __future__ import annotations

import streamlit as st

from maskdet.inference.explain import METHODS, Explanation


def show_explanation(result: Explanation) -> None:
    """The crop as the model sees it, the attribution heatmap and the overlay in three columns, and a caption."""
    spec = METHODS[result.method]
    images = st.columns(3)
    images[0].image(result.image, caption="Original (as the model sees it)", width="stretch")
    images[1].image(result.heatmap, caption=f"{spec.title} heatmap", width="stretch")
    images[2].image(result.overlay, caption="Overlay", width="stretch")
    notes = [f"{spec.description} Took {result.seconds:.2f} s."]
    if result.convergence_delta is not None:
        steps = result.settings.get("steps")
        relative = "" if result.relative_delta is None else f" ({result.relative_delta:.1%} of the change it explains)"
        error = f"convergence error {result.convergence_delta:+.4f} log-odds{relative} with {steps} steps"
        if result.converged is False:
            st.warning(f"**Unreliable explanation**: its {error} is above the {result.tolerance:.0%} bound"
                       + (" even with the most steps the time allows" if result.settings.get("auto_steps") else
                          ": raise the steps") + ". The heatmap may show integration noise rather than what the "
                       "model used.", icon="⚠️")
        else:
            notes.append(f"Converged: the attributions add up to the {result.log_odds_gap:+.3f} log-odds between "
                         f"baseline and face, {error}, within the {result.tolerance:.0%} bound.")
    st.caption(" ".join(notes))
