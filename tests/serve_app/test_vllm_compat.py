"""serve_app/vllm_compat.py resolves every moved vLLM name on the installed vLLM (0.32 CPU in CI, 0.26 on GPU)."""
from __future__ import annotations

import pytest

from sparse24.serve_app import vllm_compat


def test_installed_vllm_is_supported_and_every_name_resolves():
    assert vllm_compat.is_supported(vllm_compat.vllm_version())
    assert callable(vllm_compat.make_arg_parser()) and callable(vllm_compat.init_app_state())
    assert vllm_compat.error_response_class().__name__ == "ErrorResponse"
    assert vllm_compat.request_class("chat").__name__ == "ChatCompletionRequest"
    assert vllm_compat.request_class("completion").__name__ == "CompletionRequest"
    errors = vllm_compat.client_error_classes()
    assert ValueError in errors and errors[0].__module__ == "vllm.exceptions"


def test_version_check_and_missing_names_are_explicit():
    assert vllm_compat.is_supported("0.26.0") and vllm_compat.is_supported("0.32.0+cpu")
    assert not vllm_compat.is_supported("0.33.0")
    with pytest.raises(ImportError, match="supported vLLM versions: 0.26, 0.32"):
        vllm_compat._first(("vllm.no_such_module", "X"))
