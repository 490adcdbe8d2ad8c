"""insightface face backend: SCRFD detection + ArcFace embeddings from a local model pack.

A pack is a folder of ONNX files (``buffalo_l``, ``antelopev2``, …). We load it through
insightface's own ``model_zoo`` classes (``SCRFD``, ``ArcFaceONNX``, ``Landmark``,
``Attribute``) from a local folder only: ``FaceAnalysis('buffalo_l')`` without a local
folder starts a download with no timeout, so this module never passes insightface a name
that is not an existing folder, and never sets ``download=True``.

Each file's role is declared, not guessed (STYLE.md rule 5), by ``manifest.json`` in the
pack, in either of two forms:

- insightface's model-package manifest V2 (``"manifest_version": 2``, ``model_id``,
  ``license`` → ``MODEL.LICENSE``, ``tasks: {detection: {file}, recognition: {file}}``),
  parsed and verified by insightface itself (``model_zoo.package_manifest``);
- imagejury's small roles map, for packs that need a landmark or gender/age model too::

      {"format": "imagejury-face-pack/1",
       "roles": {"det_10g.onnx": "detection", "w600k_r50.onnx": "recognition",
                 "1k3d68.onnx": "landmark_3d_68"},
       "preprocessing": {"w600k_r50.onnx": {"mean": 127.5, "std": 127.5}}}   # optional

Packs published without a manifest (buffalo_l, antelopev2, …) fall back to insightface's
own router (``model_zoo.get_model`` on each file); a file the router maps to nothing is
an error that names the file, never a silent skip.

Recognition runs once for all faces of all images (``ArcFaceONNX.get_feat`` on a list of
``norm_crop`` aligned crops). Models whose ONNX batch axis is fixed at 1 fall back to one
call per face, with a logged note.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.interfaces import Face

log = logging.getLogger(__name__)

MODEL_NAME = "insightface"
DEFAULT_ROOT = Path("~/.insightface/models")
DEFAULT_PACK = "buffalo_l"

# similarity >= threshold means "same person" (cosine of L2-normalised ArcFace embeddings).
SAME_PERSON_THRESHOLD = 0.4
THRESHOLD_SOURCE = (
    "insightface 2.1 vendor default: insightface/gui/core/constants.py DEFAULT_THRESHOLD = 0.4, "
    "the cosine at which insightface.gui.core.recognition.compare_embeddings says 'Same Person' "
    "(0.35-0.40 is its 'Uncertain' band). A looser published value is deepface's ArcFace "
    "cosine-distance threshold 0.68 (similarity 0.32, tuned on LFW for deepface's own ArcFace "
    "weights, deepface/modules/verification.py). Not re-measured by imagejury on buffalo_l."
)
DEFAULT_DET_SIZE = 640  # SCRFD input side; insightface's FaceAnalysis uses 640x640 for its large size
DEFAULT_DET_THRESH = 0.5  # insightface FaceAnalysis.prepare(det_thresh=0.5) default
DEFAULT_MODULES = ("detection", "recognition", "landmark_3d_68")
ROLES = ("detection", "recognition", "landmark_3d_68", "landmark_2d_106", "genderage")
DEFAULT_REC_BATCH = 128  # faces per recognition call; bounds GPU memory on huge batches

HOW_TO_SUPPLY = (
    f"on a machine with internet access, download insightface's '{DEFAULT_PACK}' pack once "
    f"(buffalo_l.zip from the insightface model zoo), unzip it (e.g. to ~/.insightface/models/{DEFAULT_PACK}), "
    "copy the folder here and pass --face-model PATH to that folder. imagejury never downloads "
    "insightface packs. Or use --face-backend dlib, which needs no separate download."
)


# -- locating ---------------------------------------------------------------------------
def _has_models(folder: Path) -> bool:
    return any(folder.glob("*.onnx")) or (folder / "manifest.json").is_file()


def locate_insightface(pack_path: str | None) -> str:
    """Return the pack folder, or raise ``ModelUnavailableError`` at once (no download).

    ``pack_path`` is a folder, or the bare name of a folder under ``~/.insightface/models``.
    """
    default_dir = (DEFAULT_ROOT / DEFAULT_PACK).expanduser()
    if not pack_path:
        state = "exists" if default_dir.is_dir() and _has_models(default_dir) else "does not exist"
        raise ModelUnavailableError(
            MODEL_NAME,
            f"no model-pack folder was given (--face-model); insightface's default folder {default_dir} {state}",
            HOW_TO_SUPPLY,
        )
    text = str(pack_path)
    candidates = [Path(text).expanduser()]
    if "/" not in text and "\\" not in text:
        candidates.append((DEFAULT_ROOT / text).expanduser())
    looked: list[str] = []
    for folder in candidates:
        if folder.is_dir() and _has_models(folder):
            return str(folder.resolve())
        if folder.is_dir():
            looked.append(f"{folder} (a folder with no .onnx files and no manifest.json)")
        elif folder.exists():
            looked.append(f"{folder} (not a folder: a pack is a folder of ONNX files)")
        else:
            looked.append(f"{folder} (does not exist)")
    raise ModelUnavailableError(f"{MODEL_NAME} pack '{text}'", "; ".join(looked), HOW_TO_SUPPLY)


# -- providers --------------------------------------------------------------------------
def select_providers(device: str) -> tuple[list[str], list[dict]]:
    """onnxruntime providers for ``device``: CUDA (+CPU fallback) when asked and present, else CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            device_id = int(device.split(":", 1)[1]) if ":" in device else 0
            return ["CUDAExecutionProvider", "CPUExecutionProvider"], [{"device_id": device_id}, {}]
        log.warning(
            "device %s asked for, but this onnxruntime has no CUDAExecutionProvider (has %s); "
            "insightface runs on CPU (install onnxruntime-gpu for CUDA)",
            device,
            available,
        )
    return ["CPUExecutionProvider"], [{}]


def _session_options(threads: int | None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only; insightface's FaceAnalysis does the same globally
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return options


# -- loading ----------------------------------------------------------------------------
@dataclass
class _Loaded:
    models: dict[str, Any] = field(default_factory=dict)  # role -> insightface model object
    files: dict[str, str] = field(default_factory=dict)  # role -> file name
    how: str = ""  # how roles were decided
    pack_name: str = ""


def _check_onnx_file(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if path.suffix.lower() != ".onnx" or folder.resolve() not in path.parents:
        raise ModelError(f"{folder / 'manifest.json'}: '{name}' is not an .onnx file inside the pack")
    if not path.is_file():
        raise ModelError(f"{folder / 'manifest.json'} declares '{name}', but {path} does not exist")
    return path


def _load_insightface_manifest(folder: Path, modules: Sequence[str], session_kwargs: dict) -> _Loaded:
    """insightface's own manifest V2: parsed, hash-checked and built by insightface."""
    from insightface.model_zoo import model_zoo
    from insightface.model_zoo.package_manifest import load_model_package

    try:
        package = load_model_package(folder)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise ModelError(f"invalid insightface model-package manifest {folder / 'manifest.json'}: {exc}") from exc
    loaded = _Loaded(how="insightface manifest V2", pack_name=package.name)
    for task, descriptor in package.tasks.items():
        if task not in ROLES:
            log.info("insightface pack %s: task '%s' (%s) is not used by imagejury", folder, task, descriptor.file)
            continue
        if task not in modules:
            continue
        try:
            model = model_zoo.get_model(str(folder), model_task=task, model_descriptor=descriptor, **session_kwargs)
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            raise ModelError(f"{descriptor.path}: insightface could not load it as {task}: {exc}") from exc
        loaded.models[task] = model
        loaded.files[task] = descriptor.file
    return loaded


def _build_role(path: Path, role: str, session_kwargs: dict):
    """Build insightface's class for a declared role on a local file."""
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.attribute import Attribute
    from insightface.model_zoo.landmark import Landmark
    from insightface.model_zoo.model_zoo import PickableInferenceSession
    from insightface.model_zoo.scrfd import SCRFD

    session = PickableInferenceSession(str(path), **session_kwargs)
    if role == "detection":
        n_out = len(session.get_outputs())
        if n_out not in (6, 9, 10, 15):
            raise ModelError(f"{path}: declared detection, but it has {n_out} outputs; SCRFD needs 6, 9, 10 or 15")
        return SCRFD(model_file=str(path), session=session)
    if role == "recognition":
        if len(session.get_outputs()) != 1:
            raise ModelError(f"{path}: declared recognition, but an ArcFace model has exactly one output")
        return ArcFaceONNX(model_file=str(path), session=session)
    if role.startswith("landmark"):
        return Landmark(model_file=str(path), session=session)
    return Attribute(model_file=str(path), session=session)


def _load_roles_manifest(folder: Path, document: dict, modules: Sequence[str], session_kwargs: dict) -> _Loaded:
    """imagejury's roles map: file -> role, optional per-file mean/std."""
    roles = document.get("roles")
    if not isinstance(roles, dict) or not roles:
        raise ModelError(f"{folder / 'manifest.json'}: 'roles' must map file names to roles {list(ROLES)}")
    preprocessing = document.get("preprocessing", {}) or {}
    loaded = _Loaded(how="imagejury roles manifest", pack_name=str(document.get("name", folder.name)))
    seen: dict[str, str] = {}
    for name, role in roles.items():
        if role not in ROLES:
            raise ModelError(f"{folder / 'manifest.json'}: '{name}' has unknown role '{role}' (known: {list(ROLES)})")
        if role in seen:
            raise ModelError(f"{folder / 'manifest.json'}: both '{seen[role]}' and '{name}' are declared {role}")
        seen[role] = name
        path = _check_onnx_file(folder, name)
        if role not in modules:
            continue
        model = _build_role(path, role, session_kwargs)
        if model.taskname != role:
            raise ModelError(f"{path}: declared {role}, but its outputs make insightface read it as {model.taskname}")
        if name in preprocessing:
            values = preprocessing[name]
            model.input_mean = float(values["mean"])
            model.input_std = float(values["std"])
        loaded.models[role] = model
        loaded.files[role] = name
    return loaded


def _load_routed(folder: Path, modules: Sequence[str], session_kwargs: dict) -> _Loaded:
    """No manifest: insightface's own router decides, and every file must route somewhere."""
    from insightface.model_zoo import model_zoo

    loaded = _Loaded(how="insightface router (no manifest)", pack_name=folder.name)
    for path in sorted(folder.glob("*.onnx")):
        model = model_zoo.get_model(str(path), **session_kwargs)
        if model is None:
            raise ModelError(
                f"{path}: insightface's model router maps this file to no role. Declare the roles of "
                f"the pack's files in {folder / 'manifest.json'} (see models/face_insightface.py), "
                "or move the file out of the pack"
            )
        role = model.taskname
        if role not in ROLES:
            log.info("insightface pack %s: %s is a '%s' model, not used by imagejury", folder, path.name, role)
            continue
        if role in loaded.files:
            raise ModelError(
                f"{folder}: both {loaded.files[role]} and {path.name} route to {role}; "
                "declare which one to use in manifest.json"
            )
        loaded.files[role] = path.name
        if role in modules:
            loaded.models[role] = model
    loaded.files = {role: name for role, name in loaded.files.items() if role in loaded.models}
    return loaded


def _load_pack(folder: Path, modules: Sequence[str], session_kwargs: dict) -> _Loaded:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return _load_routed(folder, modules, session_kwargs)
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{manifest} is not readable JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ModelError(f"{manifest} must be a JSON object")
    if document.get("manifest_version") == 2:
        return _load_insightface_manifest(folder, modules, session_kwargs)
    if "roles" in document:
        return _load_roles_manifest(folder, document, modules, session_kwargs)
    raise ModelError(
        f'{manifest} is neither insightface\'s model-package manifest V2 ("manifest_version": 2) '
        'nor imagejury\'s roles manifest ("roles": {file: role})'
    )


def load_insightface(
    pack_path: str,
    device: str = "cpu",
    *,
    det_size: int | tuple[int, int] = DEFAULT_DET_SIZE,
    det_thresh: float = DEFAULT_DET_THRESH,
    same_person_threshold: float = SAME_PERSON_THRESHOLD,
    modules: Sequence[str] = DEFAULT_MODULES,
    threads: int | None = None,
    rec_batch_size: int = DEFAULT_REC_BATCH,
) -> InsightFaceAnalyzer:
    """Load a local insightface pack as a ``FaceAnalyzer`` (never downloads)."""
    folder = Path(locate_insightface(pack_path))
    modules = tuple(modules)
    for needed in ("detection", "recognition"):
        if needed not in modules:
            raise ValueError(f"modules must include '{needed}'")
    providers, provider_options = select_providers(device)
    session_kwargs = {
        "providers": providers,
        "provider_options": provider_options,
        "sess_options": _session_options(threads),
    }
    loaded = _load_pack(folder, modules, session_kwargs)
    missing = [role for role in ("detection", "recognition") if role not in loaded.models]
    if missing:
        raise ModelError(
            f"insightface pack {folder} has no {' and no '.join(missing)} model "
            f"(roles found by {loaded.how}: {loaded.files or 'none'})"
        )
    return InsightFaceAnalyzer(
        folder,
        loaded,
        device=device,
        det_size=det_size,
        det_thresh=det_thresh,
        same_person_threshold=same_person_threshold,
        rec_batch_size=rec_batch_size,
    )


# -- the analyzer -------------------------------------------------------------------------
def _ort_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """onnxruntime's own exception classes (imported late: onnxruntime is optional), plus ``more``."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return (*more, state.Fail, state.InvalidArgument, state.RuntimeException)


def _to_bgr(image: Image.Image) -> np.ndarray:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ValueError("cannot analyse an empty image")
    rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])  # insightface works on OpenCV's BGR order


class InsightFaceAnalyzer:
    """``FaceAnalyzer`` over insightface model objects; see the module docstring."""

    name = MODEL_NAME

    def __init__(
        self,
        folder: Path,
        loaded: _Loaded,
        *,
        device: str,
        det_size: int | tuple[int, int],
        det_thresh: float,
        same_person_threshold: float,
        rec_batch_size: int,
    ) -> None:
        if not 0.0 < det_thresh < 1.0:
            raise ValueError(f"det_thresh must be in (0, 1), got {det_thresh}")
        if rec_batch_size < 1:
            raise ValueError("rec_batch_size must be at least 1")
        self.folder = folder
        self.pack_name = loaded.pack_name
        self.roles = dict(loaded.files)
        self.role_source = loaded.how
        self.device = device
        self.key = f"{MODEL_NAME}:{folder}:{device}"
        self.same_person_threshold = float(same_person_threshold)
        self.threshold_source = THRESHOLD_SOURCE
        self.det_thresh = float(det_thresh)
        self.rec_batch_size = int(rec_batch_size)
        self.detector = loaded.models["detection"]
        self.recognizer = loaded.models["recognition"]
        self.landmarker = loaded.models.get("landmark_3d_68")
        self.extras = {role: loaded.models[role] for role in ("landmark_2d_106", "genderage") if role in loaded.models}
        if not getattr(self.detector, "use_kps", False):
            raise ModelError(
                f"{folder / self.roles['detection']}: this detector gives no 5-point keypoints, "
                "which ArcFace alignment needs; use a *_kps / *_bnkps SCRFD"
            )
        size = (det_size, det_size) if isinstance(det_size, int) else (int(det_size[0]), int(det_size[1]))
        static = getattr(self.detector, "static_input_size", None)
        if static is not None and tuple(static) != size:
            log.warning("%s has a fixed input size %s; det_size %s ignored", self.roles["detection"], static, size)
            size = (int(static[0]), int(static[1]))
        self.det_size: tuple[int, int] = size
        ctx_id = 0 if device.startswith("cuda") else -1
        self.detector.prepare(ctx_id, input_size=self.det_size, det_thresh=self.det_thresh)
        for model in [self.recognizer, self.landmarker, *self.extras.values()]:
            if model is not None:
                model.prepare(ctx_id)
        self.providers_by_role = {role: list(model.session.get_providers()) for role, model in loaded.models.items()}
        self.providers: list[str] = self.providers_by_role["recognition"]
        rec_shape = list(self.recognizer.input_shape)
        self.rec_size = int(self.recognizer.input_size[0])
        out_shape = list(getattr(self.recognizer, "output_shape", [None, None]))
        self.embed_dim = int(out_shape[-1]) if isinstance(out_shape[-1], int) else None
        self.batched_recognition = not isinstance(rec_shape[0], int) or rec_shape[0] != 1
        if not self.batched_recognition:
            log.info("%s has its batch axis fixed at 1: recognition runs once per face", self.roles["recognition"])
        log.info(
            "insightface pack %s loaded (%s): roles %s, providers %s, det_size %s",
            folder,
            self.role_source,
            self.roles,
            self.providers,
            self.det_size,
        )

    @property
    def provider(self) -> str:
        """The execution provider the recognizer actually runs on (first active one)."""
        return self.providers[0]

    # -- inference -------------------------------------------------------------------
    def _embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """One recognition call per ``rec_batch_size`` crops (one per face if the batch is fixed)."""
        if not crops:
            return np.zeros((0, self.embed_dim or 0), dtype=np.float32)
        if self.batched_recognition and len(crops) > 1:
            feats = []
            try:
                for start in range(0, len(crops), self.rec_batch_size):
                    chunk = crops[start : start + self.rec_batch_size]
                    out = np.asarray(self.recognizer.get_feat(chunk))
                    if out.ndim != 2 or out.shape[0] != len(chunk):
                        raise ValueError(f"{len(chunk)} faces in, output of shape {out.shape} out")
                    feats.append(out)
                return np.concatenate(feats, axis=0).astype(np.float32)
            except _ort_errors(ValueError) as exc:
                log.warning(
                    "%s does not run batched (%s); falling back to one recognition call per face",
                    self.roles["recognition"],
                    exc,
                )
                self.batched_recognition = False
        return np.concatenate([np.asarray(self.recognizer.get_feat(c)) for c in crops], axis=0).astype(np.float32)

    def analyze(self, images: Sequence[Image.Image]) -> list[list[Face]]:
        """Faces per image, largest first; one batched recognition pass over all faces."""
        from insightface.app.common import Face as InsightFace
        from insightface.utils.face_align import norm_crop

        arrays = [_to_bgr(image) for image in images]
        detections: list[list[InsightFace]] = []
        crops: list[np.ndarray] = []
        for bgr in arrays:
            bboxes, kpss = self.detector.detect(bgr, input_size=self.det_size, max_num=0, det_thresh=self.det_thresh)
            faces = [
                InsightFace(
                    bbox=bboxes[i, :4].astype(np.float32), kps=kpss[i].astype(np.float32), det_score=float(bboxes[i, 4])
                )
                for i in range(bboxes.shape[0])
            ]
            faces.sort(key=lambda f: -float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
            for face in faces:
                crops.append(norm_crop(bgr, landmark=face.kps, image_size=self.rec_size))
                for model in [self.landmarker, *self.extras.values()]:
                    if model is not None:
                        model.get(bgr, face)
            detections.append(faces)
        feats = self._embed(crops)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        feats = feats / np.maximum(norms, 1e-12)
        results: list[list[Face]] = []
        row = 0
        for faces in detections:
            out: list[Face] = []
            for face in faces:
                extra: dict = {"embedding_norm": float(norms[row, 0])}
                if face.pose is not None:
                    extra["pose"] = tuple(float(v) for v in face.pose)  # pitch, yaw, roll (degrees)
                if face.landmark_2d_106 is not None:
                    extra["landmark_2d_106"] = np.asarray(face.landmark_2d_106, dtype=np.float32)
                if face.gender is not None:
                    extra["gender"] = "M" if int(face.gender) == 1 else "F"
                    extra["age"] = int(face.age)
                landmarks = None
                if face.landmark_3d_68 is not None:
                    landmarks = np.asarray(face.landmark_3d_68, dtype=np.float32)[:, :2]
                x1, y1, x2, y2 = (float(v) for v in face.bbox)
                out.append(
                    Face(
                        box=(x1, y1, x2, y2),
                        score=float(face.det_score),
                        keypoints=np.asarray(face.kps, dtype=np.float32).reshape(5, 2),
                        embedding=feats[row].astype(np.float32),
                        landmarks=landmarks,
                        extra=extra,
                    )
                )
                row += 1
            results.append(out)
        return results

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of the two embeddings (normalised again, to be safe)."""
        a = np.asarray(a, dtype=np.float32).ravel()
        b = np.asarray(b, dtype=np.float32).ravel()
        if a.shape != b.shape:
            raise ValueError(f"embeddings differ in size: {a.shape} vs {b.shape}")
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if na == 0.0 or nb == 0.0:
            raise ValueError("cannot compare a zero embedding")
        return float(np.dot(a, b) / (na * nb))
