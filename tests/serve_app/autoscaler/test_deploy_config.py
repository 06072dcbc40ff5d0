"""deploy/autoscale.yaml turns the policy on: Ray's schema accepts it, the policy path imports to our
class, and its policy_kwargs validate (Ray itself would only fail later, inside the controller)."""

from pathlib import Path

import pytest
import yaml

from sparse24.serve_app.autoscaler import POLICY_IMPORT_PATH
from sparse24.serve_app.autoscaler.config import ItlSlaPolicyConfig
from sparse24.serve_app.autoscaler.policy import ItlSlaPolicy

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "autoscale.yaml"


def _autoscaling(doc):
    return doc["applications"][0]["args"]["models"][0]["deployment"]["autoscaling_config"]


def test_autoscale_config_enables_our_policy_with_valid_kwargs():
    doc = yaml.safe_load(CONFIG.read_text())
    a = _autoscaling(doc)
    assert a["policy"]["policy_function"] == POLICY_IMPORT_PATH
    ItlSlaPolicyConfig.model_validate(a["policy"]["policy_kwargs"])
    policy = ItlSlaPolicy(**a["policy"]["policy_kwargs"])
    assert policy.cfg.sla.itl_target_ms > 0


def test_ray_accepts_the_config_and_resolves_the_class():
    pytest.importorskip("ray")
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    doc = yaml.safe_load(CONFIG.read_text())
    ServeDeploySchema.model_validate(doc) if hasattr(ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(doc)
    cfg = AutoscalingConfig(**_autoscaling(doc))
    assert not cfg.policy.is_default_policy_function()
    cls = cfg.policy.get_policy()
    assert cls.__name__ == "ItlSlaPolicy"


def test_serving_app_accepts_the_autoscale_args():
    app_config = pytest.importorskip("sparse24.serve_app.config")
    doc = yaml.safe_load(CONFIG.read_text())
    cfg = app_config.parse_app_config(doc["applications"][0]["args"])
    assert cfg.models[0].deployment.autoscaling_config["max_replicas"] == 3


def test_a_bad_policy_kwarg_is_named_in_the_error():
    with pytest.raises(Exception, match="itl_target_msec"):
        ItlSlaPolicy(sla={"itl_target_msec": 50})
