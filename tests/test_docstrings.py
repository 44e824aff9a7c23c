"""Check the docstrings of skrec's public API with numpydoc's validator.

Every public class and function of ``skrec``, ``skrec.datasets``,
``skrec.export``, ``skrec.metrics``, ``skrec.model_selection`` and
``skrec.preprocessing`` (the names in their ``__all__``) is checked, and so is
every public method or property of those classes that skrec defines or
overrides (``fit``, ``predict``, ``score``, ``partial_fit``, ``recommend``,
``split``, ``get_n_splits``...). Methods inherited unchanged from scikit-learn or
``object`` (``get_params``, ``set_params``, ``get_metadata_routing``, the
``set_*_request`` methods made by metadata routing) are scikit-learn's
docstrings, not skrec's, and are skipped, as are public names that are neither
classes nor functions (``skrec.__version__``, ``skrec.SKOPS_TRUSTED_TYPES``),
which numpydoc cannot validate.

Every numpydoc check is enforced except the ones in ``IGNORED``: among others,

- GL08: the object has no docstring;
- PR01, PR02, PR03: a parameter is not documented, a documented parameter does
  not exist, or parameters are documented in another order than the signature;
- PR04 to PR10: a parameter has no type or no description, or a malformed one;
- RT01, RT03 to RT05: something is returned but not documented, or badly (``fit``
  and ``partial_fit`` document ``self``), and YD01 likewise for generators;
- EX01: there is no Examples section, for methods too (scikit-learn asks it of
  classes and functions only), since the API reference shows every public
  method on its class's page;
- GL03, GL05 to GL07, GL09, GL10: layout, such as sections out of numpydoc's
  order (GL07);
- SS01 to SS06: the summary is missing, not capitalised, not ended by a period,
  not on one line, or not in the imperative mood;
- SA02 to SA04: malformed See Also entries.

The ignored codes, and why:

- GL01, GL02: whether the summary starts on the line of the opening quotes and
  where the closing quotes sit do not show in the rendered documentation;
  scikit-learn ignores them too.
- RT02: the first line of a Returns entry may name the returned value
  (``self : object``), as in scikit-learn.
- ES01: a one-line summary is enough for many methods and functions.
- SA01: not every object has a natural See Also section.
"""

import importlib
import inspect

import pytest

numpydoc_validation = pytest.importorskip("numpydoc.validate")

PUBLIC_MODULES = [
    "skrec",
    "skrec.dask",
    "skrec.datasets",
    "skrec.exceptions",
    "skrec.export",
    "skrec.metrics",
    "skrec.model_selection",
    "skrec.preprocessing",
]

# Public names that are data rather than classes or functions.
NOT_VALIDATED = {"skrec.__version__", "skrec.SKOPS_TRUSTED_TYPES"}

IGNORED = {"GL01", "GL02", "RT02", "ES01", "SA01"}


def _defined_by_skrec(klass, name):
    """Whether attribute ``name`` of ``klass`` is a method or property of skrec.

    Data attributes and descriptors such as the ``set_*_request`` methods that
    scikit-learn's metadata routing adds to every estimator class are not.
    """
    owner = next(cls for cls in klass.__mro__ if name in vars(cls))
    member = vars(owner)[name]
    if isinstance(member, staticmethod | classmethod):
        member = member.__func__
    elif isinstance(member, property):
        member = member.fget
    if not inspect.isfunction(member):
        return False
    return member.__module__.partition(".")[0] == "skrec"


def _public_objects():
    """The dotted names of the public classes, functions and methods of skrec.

    Returns
    -------
    names : list of str
        The dotted names, such as ``"skrec.NeuralRecommender.fit"``.

    properties : set of str
        The names among them that are properties.
    """
    names, properties = [], set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in sorted(module.__all__):
            dotted = f"{module_name}.{name}"
            obj = getattr(module, name)
            if inspect.isclass(obj):
                names.append(dotted)
                for attribute in sorted(dir(obj)):
                    if attribute.startswith("_") or not _defined_by_skrec(
                        obj, attribute
                    ):
                        continue
                    names.append(f"{dotted}.{attribute}")
                    if isinstance(inspect.getattr_static(obj, attribute), property):
                        properties.add(names[-1])
            elif inspect.isfunction(obj):
                names.append(dotted)
            elif dotted not in NOT_VALIDATED:
                raise TypeError(
                    f"{dotted} is public but neither a class nor a function: add "
                    "it to NOT_VALIDATED if it cannot have a docstring."
                )
    return names, properties


PUBLIC_OBJECTS, PROPERTIES = _public_objects()


def _errors(dotted_name):
    result = numpydoc_validation.validate(dotted_name)
    errors = []
    for code, message in result["errors"]:
        if code in IGNORED:
            continue
        # numpydoc reads the signature of a property as that of its getter,
        # whose parameter ``self`` is no documented parameter.
        if code == "PR02" and dotted_name in PROPERTIES:
            continue
        errors.append((code, message))
    return result, errors


def test_public_objects_are_collected():
    assert len(PUBLIC_OBJECTS) > 20
    for expected in [
        "skrec.NeuralRecommender",
        "skrec.NeuralRecommender.fit",
        "skrec.NeuralRecommender.partial_fit",
        "skrec.NeuralRecommender.predict",
        "skrec.NeuralRecommender.recommend",
        "skrec.NeuralRecommender.score",
        "skrec.MatrixFactorization.fit",
        "skrec.BaselineRecommender.predict",
        "skrec.PopularityRecommender.recommend",
        "skrec.datasets.make_ratings",
        "skrec.metrics.ndcg_at_k",
        "skrec.metrics.RankingScorer",
        "skrec.model_selection.LeaveLastOut.split",
        "skrec.model_selection.LeavePerUserOut.get_n_splits",
        "skrec.model_selection.train_test_split_per_user",
        "skrec.preprocessing.recency_weights",
    ]:
        assert expected in PUBLIC_OBJECTS
    # Inherited unchanged from scikit-learn: not skrec's docstrings.
    for skipped in [
        "skrec.NeuralRecommender.get_params",
        "skrec.NeuralRecommender.set_params",
        "skrec.NeuralRecommender.set_score_request",
        "skrec.BaselineRecommender.score",
        "skrec.model_selection.LeaveLastOut.get_metadata_routing",
    ]:
        assert skipped not in PUBLIC_OBJECTS


@pytest.mark.parametrize("dotted_name", PUBLIC_OBJECTS, ids=PUBLIC_OBJECTS)
def test_docstring(dotted_name):
    """Check the docstring of one public object with numpydoc."""
    result, errors = _errors(dotted_name)
    if errors:
        raise ValueError(
            "\n\n".join(
                [
                    f"{dotted_name} ({result['file']}, line {result['file_line']})",
                    result["docstring"],
                    "# Errors",
                    "\n".join(f" - {code}: {message}" for code, message in errors),
                ]
            )
        )
