import pytest


def test_accuracy(model, eval_data):
    x, y = eval_data
    assert (model.predict(x) == y).mean() > 0.95


def test_digits_model_is_robust(guard_audit, model, eval_data):
    result = guard_audit(model, eval_data, attacks=["pgd"], eps=0.1)
    result.assert_robust(min_accuracy=0.7)  # decided on the 95% interval, not the estimate
    result.assert_policy("gdpr", fail_on="high")  # lists the failing controls and their articles


@pytest.mark.guard(attacks=["pgd", "fgsm"], eps=[0.05, 0.1], min_accuracy=0.5)
def test_release_candidate(model, eval_data, train_data):
    """The marker audits the test's model and data after the body and applies the gates."""
