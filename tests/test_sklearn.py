"""BayesianQDA as a scikit-learn classifier: API checks, pipelines, agreement with classify."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from groupcov.sklearn import BayesianQDA

# The API checks fit ~50 small models of 8 shapes, each shape compiled once: few draws,
# and the modes that compile fastest while still separating the classes (measured cold:
# 13 s of CPU per shape for unpooled means and pooled covariance, 28 s for hierarchical).
FAST = {
    "means": "unpooled", "covariance": "pooled", "draws": 40, "tune": 40, "chains": 2,
    "random_seed": 0,
}


@parametrize_with_checks([BayesianQDA(**FAST)])
def test_scikit_learn_api(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, np.array(["setosa", "versicolor", "virginica"])[y]


def test_probabilities_are_classify_of_the_fit(iris):
    x, y = iris
    clf = BayesianQDA(**FAST).fit(x, y)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert clf.n_features_in_ == 4
    proba = clf.predict_proba(x[::10])
    expect = clf.result_.classify(x[::10]).to_numpy()
    np.testing.assert_allclose(proba, expect, rtol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(x[::10])), proba, rtol=1e-12)
    assert (clf.predict(x[::10]) == clf.classes_[proba.argmax(1)]).all()
    assert clf.score(x, y) > 0.9
    # a missing feature: classified on the others, like the result's marginal density
    row = x[[60]].copy()
    row[0, 2] = np.nan
    np.testing.assert_allclose(clf.predict_proba(row), clf.result_.classify(row).to_numpy())
    # class_prior moves the odds by exactly its ratio
    flat = clf.set_params(class_prior=[1, 1, 1]).predict_proba(x[[70]])
    tilted = clf.set_params(class_prior=[1, 1, 4]).predict_proba(x[[70]])
    assert tilted[0, 2] / tilted[0, 1] == pytest.approx(4 * flat[0, 2] / flat[0, 1])
    with pytest.raises(ValueError, match="class_prior has 2 entries"):
        clf.set_params(class_prior=[1, 1]).predict(x[:2])


def test_pipeline_and_cross_val_score(iris):
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris
    pipe = make_pipeline(StandardScaler(), BayesianQDA(**FAST))
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, x, y, cv=cv, scoring="neg_log_loss")
    assert scores.shape == (3,) and np.all(-scores < 0.25)
    assert cross_val_score(pipe, x, y, cv=cv).mean() > 0.93


def test_sampler_kwargs_pass_through_and_own_parameters_are_named(iris):
    x, y = iris
    with pytest.raises(ValueError, match=r"sampler_kwargs sets \['draws'\]"):
        BayesianQDA(**FAST, sampler_kwargs={"draws": 10}).fit(x, y)
    # progressbar may be set there (the estimator's default is off)
    clf = BayesianQDA(**FAST, sampler_kwargs={"progressbar": False, "target_accept": 0.95})
    assert clf.fit(x, y).result_.posterior.attrs["target_accept"] == 0.95


def test_one_class_is_an_error(iris):
    x, _ = iris
    with pytest.raises(ValueError, match="two classes"):
        BayesianQDA(**FAST).fit(x[:10], np.zeros(10))


def test_missing_values_in_fit_and_predict(iris):
    x, y = iris
    x = x.copy()
    x[::7, 1] = np.nan
    clf = BayesianQDA(**FAST).fit(x, y)
    assert clf.result_.stats.incomplete.n.sum() == np.isnan(x).any(axis=1).sum()
    proba = clf.predict_proba(x)
    assert np.all(np.isfinite(proba))
    assert clf.score(x, y) > 0.9
