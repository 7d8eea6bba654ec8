"""The model stage (DESIGN section 2): from a pilot log's rows to the fitted model and its file.

`summaries` streams a log into per-class summaries, `tail` chooses a threshold and fits the
generalized Pareto tail, `splice` joins the body and the tail into one distribution, `drift`
fits each class's level over time, `fit` fits every class, and `file` / `format` write and read
the model file (its format declared once). Nothing here knows about scenarios or forecasts.
"""
