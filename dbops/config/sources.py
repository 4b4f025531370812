"""Where settings come from besides the environment: ``<NAME>_FILE`` secrets, the home directory."""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

__all__ = ["HOME_DIR_NAME", "SecretFileError", "SecretFilesSource", "default_home"]


class SecretFileError(ValueError):
    """A ``<NAME>_FILE`` variable names a file that cannot be read, or clashes with ``<NAME>``.

    The message names the variable and the path, never the file's content. The CLI shows it as
    a settings error (:class:`dbops.errors.ConfigError`, exit 2).
    """


#: Name of the embedded cluster's directory (``DBOPS_HOME`` unset).
HOME_DIR_NAME = ".dbops"


def default_home(start: Path | None = None) -> Path:
    """Where the embedded cluster lives when ``DBOPS_HOME`` is not set.

    The nearest ``.dbops`` directory in the working directory or one of its parents, the way
    git finds ``.git``: ``jupyter lab notebooks/`` or a script in a subfolder of the project
    finds the cluster ``make run`` started at its root. Else ``.dbops`` in the working
    directory, where ``dbops up`` creates it. Outside the project (a notebook server started
    in ``/``, an installed wheel run elsewhere) nothing is guessed: set ``DBOPS_HOME``.
    """
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / HOME_DIR_NAME).is_dir():
            return folder / HOME_DIR_NAME
    return here / HOME_DIR_NAME


def _is_secret(annotation: Any) -> bool:
    """True for ``SecretStr`` and ``SecretStr | None`` fields."""
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return SecretStr in typing.get_args(annotation)
    return False


class SecretFilesSource(PydanticBaseSettingsSource):
    """``<NAME>_FILE`` for every secret setting: the value is the named file's content, stripped.

    For each ``SecretStr`` field, every environment name the field has (``DATABASE_URL`` and
    ``DBOPS_DATABASE_URL``, ``DBOPS_DASHBOARD_DATABASE_URL``, ...) may instead be given as that
    name plus ``_FILE`` (Docker and Kubernetes secrets are files). Setting both the variable and
    its ``_FILE`` is an error rather than a silent choice. A secret that has its own
    ``<name>_file`` setting (the encryption keys: ``dbops keys generate`` appends to that file
    and ``keys status`` names it) is left to that setting.
    """

    def _names(self, field_name: str, field: FieldInfo) -> list[tuple[str, str]]:
        """(key for the model, environment variable name) of each way to set the field."""
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names = [choice for choice in alias.choices if isinstance(choice, str)]
            return [(name, name.upper()) for name in names]
        if isinstance(alias, str):
            return [(alias, alias.upper())]
        prefix = str(self.config.get("env_prefix", ""))
        return [(field_name, f"{prefix}{field_name}".upper())]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The secret file's content for ``field`` (None when no ``_FILE`` variable is set)."""
        environ = {key.upper(): value for key, value in os.environ.items()}
        for key, env_name in self._names(field_name, field):
            path = environ.get(f"{env_name}_FILE")
            if not path:
                continue
            if environ.get(env_name):
                raise SecretFileError(f"{env_name} and {env_name}_FILE are both set: set only one")
            try:
                return Path(path).read_text(encoding="utf-8").strip(), key, False
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise SecretFileError(f"{env_name}_FILE: cannot read {path} ({reason})") from None
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Values of the secret fields whose ``_FILE`` variable is set."""
        data: dict[str, Any] = {}
        fields = self.settings_cls.model_fields
        for field_name, field in fields.items():
            if not _is_secret(field.annotation) or f"{field_name}_file" in fields:
                continue
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                data[key] = value
        return data
