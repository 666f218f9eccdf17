"""Logistic regression on B-spline expansions of the numeric columns: a linear model that follows
curved numeric effects (the bump of mid-sized companies). Only its preprocessing differs from
logistic_regression's; it is not in the default set (slow on wide tables, rarely won)."""

from __future__ import annotations

from dataclasses import replace

from leadscore_assets.lib.modelling.families import logistic_regression

FAMILY = replace(logistic_regression.FAMILY, name="spline_logistic", simplicity=20, splines=True)
