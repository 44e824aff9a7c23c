"""scikit-learn's estimator checks over every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skrec import (
    BaselineRecommender,
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
    SequentialRecommender,
)


@parametrize_with_checks(
    [
        NeuralRecommender(),
        MatrixFactorization(),
        BaselineRecommender(),
        BaselineRecommender(strategy="global_mean"),
        PopularityRecommender(),
        SequentialRecommender(),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
