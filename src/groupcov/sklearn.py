"""Bayesian quadratic discriminant analysis as a scikit-learn classifier.

Each class is a group with its own mean and covariance; the posterior is sampled once
in :meth:`BayesianQDA.fit`, and a row's class probabilities average the class
densities over the posterior draws (:func:`groupcov.classify.classify`). With
``covariance="hierarchical"`` small classes borrow strength from the others, which
is where it beats plug-in QDA. Missing feature values (NaN) are allowed in ``fit``
(marginalized exactly) and in ``predict`` (classified on the observed features).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from groupcov.api import GroupCovModel
from groupcov.classify import classify_log

__all__ = ["BayesianQDA"]

_CLASS = "__class__"


class BayesianQDA(ClassifierMixin, BaseEstimator):
    """Quadratic discriminant analysis with posterior uncertainty and partial pooling.

    Parameters
    ----------
    means, covariance : {"hierarchical", "unpooled", "pooled"}
        Pooling of the class means and covariance matrices across classes
        (``"unpooled"`` for both is QDA with priors; pooled covariance is LDA-like).
    priors : dict or groupcov.Priors, optional
        Prior settings (see :class:`groupcov.Priors`).
    class_prior : array-like of shape (n_classes,), optional
        Prior class probabilities; default ``(n_k + 1) / (n + K)`` from the class counts
        (the posterior mean of a uniform Dirichlet).
    sampler : str, optional
        Inference back-end (see :meth:`groupcov.GroupCovModel.fit`).
    draws, tune, chains : int
        Posterior draws and warm-up steps per chain, and the number of chains.
    random_seed : int, optional
        Seed of the sampler: the same seed gives the same fit.
    sampler_kwargs : dict, optional
        Further arguments of the sampler (for example ``{"target_accept": 0.95}``).

    Attributes
    ----------
    classes_ : numpy.ndarray
        Class labels, sorted.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : numpy.ndarray
        Column names, when ``fit`` saw a DataFrame with string column names.
    result_ : groupcov.GroupCovResult
        The posterior; its groups are the positions ``0 .. K-1`` of ``classes_`` and its
        features are named ``x0, x1, ...``.

    Examples
    --------
    >>> clf = BayesianQDA(covariance="hierarchical", draws=500, chains=2, random_seed=0)
    >>> clf.get_params()["covariance"]
    'hierarchical'
    """

    def __init__(
        self,
        means: str = "hierarchical",
        covariance: str = "hierarchical",
        priors=None,
        class_prior=None,
        sampler: str | None = None,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        sampler_kwargs: dict | None = None,
    ):
        self.means = means
        self.covariance = covariance
        self.priors = priors
        self.class_prior = class_prior
        self.sampler = sampler
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.random_seed = random_seed
        self.sampler_kwargs = sampler_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = self.random_seed is None
        return tags

    def fit(self, X, y) -> BayesianQDA:
        """Sample the posterior of every class's mean and covariance.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows; NaN marks a missing value.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        BayesianQDA
        """
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                f"BayesianQDA needs at least two classes in y, got one class ({classes[0]!r})"
            )
        features = [f"x{j}" for j in range(X.shape[1])]
        frame = pd.DataFrame(X, columns=features)
        frame[_CLASS] = codes.astype(np.int64)
        model = GroupCovModel(
            frame, group=_CLASS, features=features, means=self.means,
            covariance=self.covariance, priors=self.priors,
        )
        extra = dict(self.sampler_kwargs or {})
        own = {"sampler", "draws", "tune", "chains", "random_seed"} & set(extra)
        if own:
            raise ValueError(
                f"sampler_kwargs sets {sorted(own)}, which are BayesianQDA's own parameters; "
                "set them on the estimator instead (e.g. BayesianQDA(draws=...))"
            )
        extra.setdefault("progressbar", False)
        self.result_ = model.fit(
            sampler=self.sampler, draws=self.draws, tune=self.tune, chains=self.chains,
            random_seed=self.random_seed, **extra,
        )
        self.classes_ = classes
        return self

    def _weights(self):
        if self.class_prior is None:
            return None
        prior = np.asarray(self.class_prior, dtype=float).ravel()
        if prior.shape != self.classes_.shape:
            raise ValueError(
                f"class_prior has {prior.size} entries but there are {self.classes_.size} "
                f"classes {self.classes_.tolist()}"
            )
        return prior

    def predict_log_proba(self, X) -> np.ndarray:
        """Log posterior probability of each class, shape ``(n_samples, n_classes)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        return classify_log(self.result_, X, weights=self._weights())

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each class, shape ``(n_samples, n_classes)``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        log_proba = self.predict_log_proba(X)
        return self.classes_[np.argmax(log_proba, axis=1)]
