"""The scikit-learn pipeline of examples/02-data-science.ipynb written for Apache Hamilton, for comparison.

Same steps and results: load, split, scale, PCA, three models with 5-fold cross-validation each (one task per model
and fold, through ``Parallelizable``/``Collect``), one fit per model, evaluation on the test rows, report; results
cached between runs (``with_cache()``). ``python benchmarks/count_lines.py`` counts its lines beside the two
job-orchestra versions. Run it with Hamilton (``sf-hamilton``) and scikit-learn installed.
"""

import sys

import pandas as pd
from hamilton import driver
from hamilton.htypes import Collect, Parallelizable
from sklearn import metrics
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

MODELS = ["logistic regression", "random forest", "k-nearest neighbours"]


def _make_model(name: str):
    if name == "logistic regression":
        return LogisticRegression(max_iter=1000)
    if name == "random forest":
        return RandomForestClassifier(n_estimators=100, random_state=0)
    return KNeighborsClassifier(n_neighbors=5)


def data() -> dict:
    """The features and the target (1 = malignant) of the breast-cancer dataset."""
    loaded = load_breast_cancer()
    return {"X": loaded.data, "y": 1 - loaded.target}


def split(data: dict, test_size: float = 0.25) -> dict:
    X_train, X_test, y_train, y_test = train_test_split(
        data["X"], data["y"], test_size=test_size, random_state=0, stratify=data["y"]
    )
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def scaled(split: dict) -> dict:
    """Standardized features; the scaler is fitted on the training rows only."""
    scaler = StandardScaler().fit(split["X_train"])
    return {**split, "X_train": scaler.transform(split["X_train"]), "X_test": scaler.transform(split["X_test"])}


def features(scaled: dict, n_components: int = 10) -> dict:
    reducer = PCA(n_components=n_components, random_state=0).fit(scaled["X_train"])
    return {**scaled, "X_train": reducer.transform(scaled["X_train"]), "X_test": reducer.transform(scaled["X_test"])}


def cv_task() -> Parallelizable[tuple]:
    for model in MODELS:
        for fold in range(5):
            yield model, fold


def cv_fold(cv_task: tuple, features: dict) -> tuple:
    """The validation accuracy of one model on one of 5 folds of the training rows."""
    model, fold = cv_task
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    train, valid = list(folds.split(features["X_train"], features["y_train"]))[fold]
    fitted = _make_model(model).fit(features["X_train"][train], features["y_train"][train])
    return cv_task, fitted.score(features["X_train"][valid], features["y_train"][valid])


def cv_scores(cv_fold: Collect[tuple]) -> dict:
    return dict(cv_fold)


def models(features: dict) -> dict:
    return {name: _make_model(name).fit(features["X_train"], features["y_train"]) for name in MODELS}


def evaluate(features: dict, cv_scores: dict, models: dict) -> pd.DataFrame:
    scores = {}
    for name, model in models.items():
        predicted = model.predict(features["X_test"])
        scores[name] = {
            "CV accuracy": sum(cv_scores[name, fold] for fold in range(5)) / 5,
            "test accuracy": metrics.accuracy_score(features["y_test"], predicted),
            "F1": metrics.f1_score(features["y_test"], predicted),
            "ROC AUC": metrics.roc_auc_score(features["y_test"], model.predict_proba(features["X_test"])[:, 1]),
        }
    return pd.DataFrame(scores).T.round(3)


def best_model(evaluate: pd.DataFrame) -> str:
    best = evaluate["ROC AUC"].idxmax()
    return f"Best model on the test set: {best} (ROC AUC {evaluate.loc[best, 'ROC AUC']:.3f})."


if __name__ == "__main__":
    dr = (
        driver.Builder()
        .with_modules(sys.modules[__name__])
        .enable_dynamic_execution(allow_experimental_mode=True)
        .with_cache()
        .build()
    )
    print(dr.execute(["best_model"])["best_model"])
