"""The served model's error answers, kept ours.

Shared by the pyfunc (lib/scoring/serving.py), which refuses requests with them, and the scoring
server's guard (leadscore_assets/serve.py), which passes them through as they are.
"""

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class Refusal(MlflowException):
    """An error answer whose message is ours and stays ours, with an `errors` list (maybe empty).

    MLflow's scoring server rewrites the message of an MlflowException raised by the model to
    "Failed to predict data '<the whole request>'. Error: ..." (pyfunc/scoring_server
    `invocations`), which would put every raw value, personal data included, into the response.
    The message is therefore fixed at construction and later assignments are ignored. The
    `errors` key marks the answer as checked (`leadscore_assets.serve` passes it through).
    """

    def __init__(self, message: str, errors: list[dict] | None = None, error_code=INVALID_PARAMETER_VALUE):
        self._fixed = message
        super().__init__(message, error_code=error_code, errors=list(errors or []))

    @property
    def message(self) -> str:
        return self._fixed

    @message.setter
    def message(self, value: str) -> None:  # MLflow would prepend the raw request: keep ours
        pass
