"""Every setting maskdet reads, in one typed object: :class:`Settings`.

Each field is read from an environment variable ``MASKDET_<FIELD NAME>`` (for example
``MASKDET_DATA_ROOT``), else takes the default documented beside it. :func:`current_settings` reads
them; ``python -m maskdet config`` prints the effective values and where each came from. Library
code takes the values it needs as arguments; the entry points (CLI, pages, job workers) read them here.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

KNOWN_CLASSES: tuple[str, ...] = ("without_mask", "with_mask", "incorrect_mask")
"""Every canonical class name maskdet knows, indexed by label everywhere (data sets, models, metrics):
``without_mask`` 0, ``with_mask`` 1 (the positive class: the only "masked" verdict), ``incorrect_mask`` 2
(a mask under the nose or on the chin). A model's classes are the first 2 or 3 of these (its card lists them)."""
CLASSES: tuple[str, ...] = KNOWN_CLASSES[:2]
"""The two-class list: models without a class list of their own and data sets without a third-class folder."""
POSITIVE_CLASS = "with_mask"
INCORRECT_CLASS = "incorrect_mask"


def class_list(count: int) -> tuple[str, ...]:
    """The first ``count`` known classes (2 or 3): the classes of a model with ``count`` outputs."""
    if not 2 <= count <= len(KNOWN_CLASSES):
        raise ValueError(f"a model has 2 to {len(KNOWN_CLASSES)} classes, not {count}")
    return KNOWN_CLASSES[:count]


def classes_of_labels(labels) -> tuple[str, ...]:
    """The class list that covers the integer ``labels`` (at least the two-class list)."""
    return class_list(max(2, max((int(label) for label in labels), default=0) + 1))


ENV_PREFIX = "MASKDET_"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskdet"


class Settings(BaseSettings):
    """What can be set, its default and what it means. Environment: ``MASKDET_`` + the field name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore",
                                      env_ignore_empty=True)

    data_root: Path = Field(REPO_ROOT.parent / "shared" / "datasets",
                            description="Folder whose sub-folders are data sets.")
    models_dir: Path = Field(REPO_ROOT / "models", description="Folder of trained models, one sub-folder each.")
    cache_dir: Path = Field(default_factory=_default_cache_dir,
                            description="Downloads (weights, detector graph), catalogues, features, evaluations, "
                                        "uploads; default $XDG_CACHE_HOME/maskdet or ~/.cache/maskdet.")
    download_cache_dir: Path | None = Field(None, description="Verified downloads only (the face detector graph, "
                                            "checked by SHA-256); default: the cache folder. CI keeps it while "
                                            "the cache folder starts empty each run.")
    default_model: str | None = Field(None, description="The model used when none is chosen (else models/DEFAULT, "
                                                        "else the newest).")
    threads: int = Field(0, ge=0, description="Torch threads for inference in this process (0: one per CPU core).")
    compile: bool = Field(True, description="Compile bf16 classifiers with TorchInductor (0 turns it off).")
    job_executor: str = Field("subprocess", description="Where jobs run: 'subprocess' (a fresh process each) or "
                                                         "'ray'.")
    ray_address: str | None = Field(None, description="The Ray cluster of jobs and batch scoring (else a local Ray).")
    job_niceness: int = Field(10, ge=0, le=19, description="CPU niceness a job process gives itself, so the pages "
                                                           "and the webcam come first.")
    path_roots: str | None = Field(None, description="Folders (os.pathsep-separated) typed paths may reach on an "
                                                     "exposed server.")
    ice_servers: str | None = Field(None, description="WebRTC ICE servers as a JSON list (STUN / TURN).")
    owner_secret: SecretStr | None = Field(None, description="The secret the owner types to sign in on a shared "
                                                             "dashboard (unset: only st.login or loopback).")
    owner_emails: str = Field("", description="Comma-separated e-mail addresses that are the owner when signed in "
                                              "with st.login (OIDC, [auth] in secrets.toml).")
    max_training_jobs: int = Field(1, ge=1, description="Training jobs running at once on this server.")
    max_analysis_jobs: int = Field(2, ge=1, description="Video analyses and batch scorings running at once.")
    max_evaluation_jobs: int = Field(2, ge=1, description="Folder and scene evaluations running at once.")
    max_queued_jobs: int = Field(16, ge=1, description="Jobs waiting or running on this server, all sessions.")
    session_jobs: int = Field(2, ge=1, description="Jobs one visitor's session may have waiting or running.")
    max_streams: int = Field(4, ge=0, description="Live streams (webcam, camera URL, clip) at once on this server.")
    session_storage_mb: int = Field(2048, ge=1, description="Disk one visitor's uploads, extractions and results "
                                                            "may use (MB), enforced while writing.")
    visitor_storage_mb: int = Field(8192, ge=1, description="Disk all visitors' sessions together may use (MB).")
    session_photos: int = Field(24, ge=1, description="Photos one session may analyse at once on the Photo page.")
    session_grace_s: float = Field(60.0, ge=0, description="Seconds a disconnected session may come back before "
                                                           "its jobs are cancelled and its files deleted.")
    watch_retention_days: float = Field(7.0, ge=0, description="Watched streams' recordings, snapshots and event "
                                                               "logs older than this many days are deleted.")
    public_data_url: str = Field("https://raw.githubusercontent.com",
                                 description="Where `datasets get` fetches public repository snapshots from: "
                                             "BASE/OWNER/REPO/COMMIT/PATH (a mirror, or a loopback server in tests).")


class SettingsError(ValueError):
    """A ``MASKDET_*`` variable holds a value its setting cannot take."""


def env_variable(field: str) -> str:
    """The environment variable of the setting ``field`` (``MASKDET_`` + its name in capitals)."""
    if field not in Settings.model_fields:
        raise KeyError(f"no setting {field!r}")
    return ENV_PREFIX + field.upper()


def current_settings() -> Settings:
    """The settings in force now (the environment is read on each call: tests and jobs change it).

    Raises :class:`SettingsError` (a ``ValueError``), one line naming the variable, when a value is malformed.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{env_variable(str(error['loc'][0]))}={error.get('input')!r}: {error['msg']}"
                             for error in exc.errors())
        raise SettingsError(f"bad setting: {problems}") from None


def describe_settings(settings: Settings | None = None) -> list[dict]:
    """One row per setting: name, environment variable, value, whether the environment set it, meaning."""
    settings = settings or current_settings()
    rows = []
    for name, field in Settings.model_fields.items():
        variable = env_variable(name)
        rows.append({"name": name, "variable": variable, "value": getattr(settings, name),
                     "source": "environment" if os.environ.get(variable) else "default",
                     "description": field.description or ""})
    return rows


def data_root() -> Path:
    """Folder holding the data sets (one sub-folder per data set)."""
    return current_settings().data_root


def models_dir() -> Path:
    """Folder holding trained models (one sub-folder per model)."""
    return current_settings().models_dir


def cache_dir() -> Path:
    """Folder for downloaded assets and analysis caches; created on demand."""
    path = current_settings().cache_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_data_root() -> Path:
    """The user's own data-set folder (platformdirs, e.g. ~/.local/share/maskdet/datasets): where
    ``datasets get`` unpacks when the data root is not writable; listed beside the data root. Not created here."""
    import platformdirs

    return platformdirs.user_data_path("maskdet") / "datasets"


def download_dir() -> Path:
    """Folder for verified downloads (``download_cache_dir``, else :func:`cache_dir`); created on demand."""
    path = current_settings().download_cache_dir
    if path is None:
        return cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


CACHE_PLACEHOLDER = "$MASKDET_CACHE_DIR"
"""How a model card names a folder inside the cache folder (a crop set): portable, never one machine's path."""


def portable_path(path: Path) -> str:
    """``path`` as a model card records it: under the cache folder as ``$MASKDET_CACHE_DIR/...``, else as given."""
    try:
        inside = Path(path).resolve().relative_to(current_settings().cache_dir.resolve())
    except ValueError:
        return str(path)
    return f"{CACHE_PLACEHOLDER}/{inside.as_posix()}"


def recorded_path(recorded: str) -> Path:
    """A path a model card records, on this machine: ``$MASKDET_CACHE_DIR/...`` under this cache folder."""
    if recorded == CACHE_PLACEHOLDER or recorded.startswith(CACHE_PLACEHOLDER + "/"):
        return current_settings().cache_dir / recorded[len(CACHE_PLACEHOLDER) + 1:]
    return Path(recorded).expanduser()


def uploads_dir() -> Path:
    """Folder uploaded data-set archives are extracted to (``cache_dir()/uploads``); not created here."""
    return cache_dir() / "uploads"
