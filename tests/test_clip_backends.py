"""Both image–text embedder backends: loading, caching, chunking, batching and failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagejury.models.clip import load_embedder, locate_embedder
from imagejury.models.clip.text_chunking import chunk_text
from imagejury.models.errors import ModelError, ModelUnavailableError
from imagejury.models.interfaces import ImageTextEmbedder
from imagejury.models.provider import ModelSet
from imagejury.models.registry import ModelRegistry
from imagejury.models.settings import ModelSettings
from tests.support import shapes
from tests.support.clip_fixtures import (  # noqa: F401
    TINY_CLIP_DIR,
    TINY_CLIP_SOURCE,
    mismatched_hf_clip_dir,
    offline_empty_caches,
    put_in_hub_cache,
    tiny_clip,
    tiny_hf_clip_dir,
    tiny_hf_siglip_dir,
)

torch.set_num_threads(min(2, torch.get_num_threads()))

LONG_PROMPT = " ".join(
    f"{w}{'.' if i % 17 == 16 else ''}"
    for i, w in enumerate(("a red circle beside a small blue square under " * 56).split()[:500])
)  # 500 words, with a sentence end every 17 words


def _images(n: int, seed: int = 3) -> list:
    return [s.image for s in shapes.dataset(n, seed=seed)]


# -- text cache -------------------------------------------------------------------------
def test_second_encode_of_same_text_runs_no_forward_pass(tiny_clip):  # noqa: F811
    before = tiny_clip.text_forward_calls
    first = tiny_clip.encode_texts(["a purple cross, cache test"])
    assert tiny_clip.text_forward_calls == before + 1
    again = tiny_clip.encode_texts(["a purple cross, cache test", "a purple cross, cache test"])
    assert tiny_clip.text_forward_calls == before + 1
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[0])
    again[0][:] = 0  # callers get copies, not the cache
    np.testing.assert_array_equal(tiny_clip.encode_texts(["a purple cross, cache test"])[0], first[0])


def test_duplicates_in_one_call_are_encoded_once_and_cache_is_bounded():
    emb = load_embedder(TINY_CLIP_SOURCE)
    emb.text_cache_size = 2
    out = emb.encode_texts(["a red circle", "a red circle", "a blue square"])
    assert emb.text_forward_calls == 2
    np.testing.assert_array_equal(out[0], out[1])
    emb.encode_texts(["a green triangle"])  # evicts the least recently used ("a red circle")
    emb.encode_texts(["a blue square"])
    assert emb.text_forward_calls == 3
    emb.encode_texts(["a red circle"])
    assert emb.text_forward_calls == 4


# -- long prompts ------------------------------------------------------------------------
def test_long_prompt_is_chunked_with_a_recorded_warning(tiny_clip):  # noqa: F811
    assert len(LONG_PROMPT.split()) == 500
    n_tokens = tiny_clip.count_tokens(LONG_PROMPT)
    assert n_tokens > tiny_clip.context_length
    before_calls, before_chunked = tiny_clip.text_forward_calls, tiny_clip.chunked_texts
    vec = tiny_clip.encode_texts([LONG_PROMPT])
    assert vec.shape == (1, tiny_clip.embed_dim) and vec.dtype == np.float32
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert tiny_clip.chunked_texts == before_chunked + 1
    n_chunks = tiny_clip.text_forward_calls - before_calls
    assert n_chunks >= n_tokens // tiny_clip.context_length
    assert "chunks" in tiny_clip.last_warnings[-1] and str(tiny_clip.context_length) in tiny_clip.last_warnings[-1]
    # the average points the same way as its parts: the prompt is about red circles and blue squares
    parts = tiny_clip.encode_texts(["a red circle", "a blue square", "a yellow triangle"])
    sims = vec[0] @ parts.T
    assert sims[0] > sims[2] and sims[1] > sims[2]


def test_chunks_fit_the_context_and_keep_every_word(tiny_clip):  # noqa: F811
    chunks = chunk_text(LONG_PROMPT, tiny_clip.count_tokens, tiny_clip.context_length)
    assert len(chunks) > 1
    assert all(tiny_clip.count_tokens(c) <= tiny_clip.context_length for c in chunks)
    assert " ".join(chunks).split() == LONG_PROMPT.split()
    assert chunks[0].endswith(".")  # sentence boundaries are preferred


def test_chunking_a_single_overlong_word():
    count = len  # one token per character, no specials
    chunks = chunk_text("x" * 25 + " tail", count, 10)
    assert all(len(c) <= 10 for c in chunks) and "".join(chunks).replace(" ", "") == "x" * 25 + "tail"
    assert chunk_text("short", count, 10) == ["short"]


# -- images ----------------------------------------------------------------------------
def test_image_batches_are_counted_and_batch_size_does_not_change_results():
    emb = load_embedder(TINY_CLIP_SOURCE, batch_size=2)
    images = _images(5)
    small = emb.encode_images(images)
    assert emb.image_forward_calls == 5
    emb.batch_size = 32
    big = emb.encode_images(images)
    assert emb.image_forward_calls == 10
    assert small.shape == (5, emb.embed_dim) and small.dtype == np.float32
    np.testing.assert_allclose(small, big, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)


def test_bad_and_empty_inputs(tiny_clip):  # noqa: F811
    assert tiny_clip.encode_images([]).shape == (0, tiny_clip.embed_dim)
    assert tiny_clip.encode_texts([]).shape == (0, tiny_clip.embed_dim)
    with pytest.raises(TypeError, match="PIL"):
        tiny_clip.encode_images([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(TypeError, match="strings"):
        tiny_clip.encode_texts([3])
    grey = shapes.render("red", "circle", np.random.default_rng(0)).convert("L")  # converted, not refused
    assert tiny_clip.encode_images([grey]).shape == (1, tiny_clip.embed_dim)


def test_identity_and_temperature(tiny_clip):  # noqa: F811
    assert tiny_clip.key == f"open_clip:{TINY_CLIP_SOURCE}|cpu|float32"
    assert tiny_clip.context_length == 32
    assert 1.0 <= tiny_clip.logit_scale <= 100.0
    assert tiny_clip.tokenizer is not None


def test_registry_shares_one_loaded_embedder():
    registry = ModelRegistry()
    settings = ModelSettings(clip=TINY_CLIP_SOURCE)
    a = ModelSet(settings, registry=registry).embedder()
    b = ModelSet(settings, registry=registry).embedder()
    assert a is b and sum(registry.load_counts.values()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ModelError, match="CUDA"):
        load_embedder(TINY_CLIP_SOURCE, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_autocast_matches_cpu(tiny_clip, dtype):  # noqa: F811
    gpu = load_embedder(TINY_CLIP_SOURCE, device="cuda", dtype=dtype)
    images = _images(8)
    cpu_vecs = tiny_clip.encode_images(images)
    gpu_vecs = gpu.encode_images(images)
    assert gpu_vecs.dtype == np.float32
    assert np.min(np.sum(cpu_vecs * gpu_vecs, axis=1)) > 0.99
    texts = ["a red circle", LONG_PROMPT]
    assert np.min(np.sum(tiny_clip.encode_texts(texts) * gpu.encode_texts(texts), axis=1)) > 0.99


# -- missing or wrong models --------------------------------------------------------------
def test_pretrained_tag_missing_offline_fails_fast_and_explains(offline_empty_caches):  # noqa: F811
    for call in (locate_embedder, load_embedder):
        with pytest.raises(ModelUnavailableError) as info:
            call("ViT-B-32:openai")
        msg = str(info.value)
        assert info.value.model == "ViT-B-32:openai"
        assert str(offline_empty_caches / "hf" / "hub") in msg  # where it looked
        assert "HF_HUB_OFFLINE" in msg and "ViT-B-32:/path/to/checkpoint" in msg  # how to supply it
    assert not (offline_empty_caches / "hf").exists()  # nothing was downloaded or created


@pytest.mark.parametrize("source", ["hf:openai/clip-vit-base-patch32", "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"])
def test_hub_sources_missing_offline_fail_fast(offline_empty_caches, source):  # noqa: F811
    with pytest.raises(ModelUnavailableError) as info:
        load_embedder(source)
    assert info.value.model == source and "HF_HUB_OFFLINE" in str(info.value)


def test_locate_never_touches_the_network_even_when_online(offline_empty_caches, monkeypatch):  # noqa: F811
    import imagejury.models.clip.sources as loader

    monkeypatch.delenv("HF_HUB_OFFLINE")

    def no_network(*a, **k):
        raise AssertionError("locate_embedder must not probe the network")

    monkeypatch.setattr(loader, "download_allowed", no_network)
    monkeypatch.setattr(loader.socket, "create_connection", no_network)
    with pytest.raises(ModelUnavailableError, match="only local files were checked"):
        locate_embedder("ViT-B-32:openai")
    with pytest.raises(ModelUnavailableError):
        locate_embedder("hf:openai/clip-vit-base-patch32")


def test_unreachable_hub_fails_fast_when_online(offline_empty_caches, monkeypatch):  # noqa: F811
    import imagejury.models.clip.sources as loader

    monkeypatch.delenv("HF_HUB_OFFLINE")

    def refused(*a, **k):
        raise OSError("connection refused")

    monkeypatch.setattr(loader.socket, "create_connection", refused)
    with pytest.raises(ModelUnavailableError, match="not reachable"):
        load_embedder("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")


def test_download_probe_is_skipped_offline(monkeypatch):
    import imagejury.models.clip.sources as loader

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loader.socket, "create_connection", lambda *a, **k: pytest.fail("probed offline"))
    assert loader.download_allowed("https://huggingface.co") is False


def test_open_clip_hub_repo_loads_from_the_cache_offline(offline_empty_caches):  # noqa: F811
    snapshot = put_in_hub_cache(offline_empty_caches / "hf" / "hub", "imagejury/tiny-shapes-clip", TINY_CLIP_DIR)
    source = "hf-hub:imagejury/tiny-shapes-clip"
    assert locate_embedder(source) == str(snapshot / "open_clip_model.safetensors")
    emb = load_embedder(source)
    ref = load_embedder(TINY_CLIP_SOURCE)
    images = _images(2)
    np.testing.assert_allclose(emb.encode_images(images), ref.encode_images(images), atol=1e-6)


def test_hf_hub_id_loads_from_the_cache_offline(offline_empty_caches, tiny_hf_clip_dir):  # noqa: F811
    snapshot = put_in_hub_cache(offline_empty_caches / "hf" / "hub", "imagejury/tiny-hf-clip", tiny_hf_clip_dir)
    assert locate_embedder("hf:imagejury/tiny-hf-clip") == str(snapshot)
    emb = load_embedder("hf:imagejury/tiny-hf-clip")
    assert emb.encode_texts(["a red circle"]).shape == (1, 24)


TINY_ARCH = "TinyShapes-Test"


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory) -> str:
    """Register the tiny checkpoint's architecture with open_clip under a name, as real ones are."""
    import json

    import open_clip

    cfg = json.loads((TINY_CLIP_DIR / "open_clip_config.json").read_text())["model_cfg"]
    path = tmp_path_factory.mktemp("arch") / f"{TINY_ARCH}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return TINY_ARCH


def test_architecture_with_local_checkpoint_file(tiny_arch, tiny_clip):  # noqa: F811
    emb = load_embedder(f"{tiny_arch}:{TINY_CLIP_DIR / 'open_clip_model.safetensors'}")
    images = _images(3)
    np.testing.assert_allclose(emb.encode_images(images), tiny_clip.encode_images(images), atol=1e-6)
    np.testing.assert_allclose(emb.encode_texts(["a red circle"]), tiny_clip.encode_texts(["a red circle"]), atol=1e-6)


@pytest.mark.parametrize("where", ["hub_cache", "url_cache"])
def test_pretrained_tag_resolves_from_local_caches_offline(
    tiny_arch, tiny_clip, offline_empty_caches, monkeypatch, where
):  # noqa: F811
    """NAME:TAG goes through open_clip's pretrained table to the HF cache or open_clip's URL cache."""
    import shutil

    import open_clip

    tag_cfg = {
        "mean": (0.48145466, 0.4578275, 0.40821073),
        "std": (0.26862954, 0.26130258, 0.27577711),
        "quick_gelu": False,
    }
    if where == "hub_cache":
        tag_cfg["hf_hub"] = "imagejury/tiny-shapes-tag/"
        snapshot = put_in_hub_cache(offline_empty_caches / "hf" / "hub", "imagejury/tiny-shapes-tag", TINY_CLIP_DIR)
        expected = snapshot / "open_clip_model.safetensors"
    else:
        tag_cfg["url"] = "https://example.invalid/weights/tiny_shapes.safetensors"
        expected = offline_empty_caches / "home" / ".cache" / "clip" / "tiny_shapes.safetensors"
        expected.parent.mkdir(parents=True)
        shutil.copy(TINY_CLIP_DIR / "open_clip_model.safetensors", expected)
    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(
        open_clip, "get_pretrained_cfg", lambda m, t: tag_cfg if (m, t) == (tiny_arch, "shapes") else real(m, t)
    )
    source = f"{tiny_arch}:shapes"
    assert locate_embedder(source) == str(expected)
    emb = load_embedder(source)
    images = _images(2)
    np.testing.assert_allclose(emb.encode_images(images), tiny_clip.encode_images(images), atol=1e-6)


def test_missing_checkpoint_file(tmp_path):
    missing = tmp_path / "nonexistent.pt"
    with pytest.raises(ModelUnavailableError) as info:
        load_embedder(f"ViT-B-32:{missing}")
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)


def test_corrupt_checkpoint_is_a_model_error(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not load"):
        load_embedder(f"RN50:{bad}")


def test_local_dir_without_weights_or_config(tmp_path):
    (tmp_path / "open_clip_config.json").write_text((TINY_CLIP_DIR / "open_clip_config.json").read_text())
    with pytest.raises(ModelUnavailableError, match="no weights"):
        locate_embedder(f"local-dir:{tmp_path}")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_embedder(f"local-dir:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="open_clip_config.json .missing"):
        load_embedder(f"local-dir:{tmp_path / 'empty'}")
    with pytest.raises(ModelUnavailableError):
        load_embedder(str(tmp_path / "no_such_folder"))


@pytest.mark.parametrize(
    "source, match",
    [
        ("NotAModel:openai", "not an open_clip architecture"),
        ("ViT-B-32:nosuchtag", "known tags"),
        ("ViT-B-32", "no weights"),
        ("", "empty"),
    ],
)
def test_bad_sources_are_typed_errors(source, match):
    with pytest.raises(ModelError, match=match):
        load_embedder(source)


# -- Hugging Face backend ----------------------------------------------------------------
def test_hf_folder_loads_through_the_loader(tiny_hf_clip_dir):  # noqa: F811
    for source in (str(tiny_hf_clip_dir), f"hf:{tiny_hf_clip_dir}"):
        assert locate_embedder(source) == str(tiny_hf_clip_dir.resolve())
    emb = load_embedder(f"hf:{tiny_hf_clip_dir}", batch_size=2)
    assert isinstance(emb, ImageTextEmbedder) and type(emb).__name__ == "HFClipEmbedder"
    assert emb.embed_dim == 24 and emb.context_length == 77
    img = emb.encode_images(_images(3))
    txt = emb.encode_texts(["a red circle", "a red circle", "a photo of a dog"])
    assert img.shape == (3, 24) and txt.shape == (3, 24) and img.dtype == txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    assert emb.image_forward_calls == 3 and emb.text_forward_calls == 2
    assert emb.logit_scale > 1.0


def test_hf_backend_matches_a_direct_transformers_forward(tiny_hf_clip_dir):  # noqa: F811
    from transformers import CLIPModel, CLIPProcessor

    emb = load_embedder(f"hf:{tiny_hf_clip_dir}")
    model = CLIPModel.from_pretrained(tiny_hf_clip_dir).eval()
    proc = CLIPProcessor.from_pretrained(tiny_hf_clip_dir)
    images, texts = _images(2), ["a blue square", "a much longer caption about a yellow triangle"]
    with torch.no_grad():
        inputs = proc(text=texts, images=images, return_tensors="pt", padding=True)
        out = model(**inputs)
    want_img = torch.nn.functional.normalize(out.image_embeds, dim=-1).numpy()
    want_txt = torch.nn.functional.normalize(out.text_embeds, dim=-1).numpy()
    np.testing.assert_allclose(emb.encode_images(images), want_img, atol=1e-5)
    np.testing.assert_allclose(emb.encode_texts(texts), want_txt, atol=1e-5)


def test_hf_long_prompt_is_chunked(tiny_hf_clip_dir):  # noqa: F811
    emb = load_embedder(str(tiny_hf_clip_dir))
    vec = emb.encode_texts([LONG_PROMPT])
    assert emb.chunked_texts == 1 and emb.text_forward_calls > 1 and emb.last_warnings
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5


def test_hf_tokenizer_that_is_not_the_models_is_refused(mismatched_hf_clip_dir):  # noqa: F811
    with pytest.raises(ModelError, match="tokenizer") as info:
        load_embedder(f"hf:{mismatched_hf_clip_dir}")
    assert not isinstance(info.value, ModelUnavailableError)
    assert "49408" in str(info.value) and "1000" in str(info.value)


def test_hf_folder_without_processor_is_unavailable(tiny_hf_clip_dir, tmp_path):  # noqa: F811
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_hf_clip_dir, copy)
    (copy / "preprocessor_config.json").unlink()
    with pytest.raises(ModelUnavailableError, match="preprocessor_config.json"):
        load_embedder(f"hf:{copy}")


def test_hf_siglip_folder_matches_a_direct_forward(tiny_hf_siglip_dir):  # noqa: F811
    from transformers import AutoTokenizer, SiglipImageProcessor, SiglipModel

    emb = load_embedder(f"hf:{tiny_hf_siglip_dir}")
    assert emb.model_type == "siglip" and emb.context_length == 64 and emb.embed_dim == 32
    model = SiglipModel.from_pretrained(tiny_hf_siglip_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_hf_siglip_dir)
    proc = SiglipImageProcessor.from_pretrained(tiny_hf_siglip_dir)
    images, texts = _images(2), ["a blue square", "two red circles"]
    with torch.no_grad():
        ids = tok(texts, padding="max_length", max_length=64, return_tensors="pt")["input_ids"]
        out = model(input_ids=ids, pixel_values=proc(images=images, return_tensors="pt")["pixel_values"])
    np.testing.assert_allclose(
        emb.encode_images(images), torch.nn.functional.normalize(out.image_embeds, dim=-1).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        emb.encode_texts(texts), torch.nn.functional.normalize(out.text_embeds, dim=-1).numpy(), atol=1e-5
    )


def test_random_source_is_the_real_architecture_and_says_it_is_random(caplog):
    """``random:NAME`` exists for speed figures: real shapes, a loud warning, no weights."""
    from imagejury.models.clip import load_embedder, locate_embedder
    from imagejury.models.errors import ModelError

    assert "random" in locate_embedder("random:RN50")
    with caplog.at_level("WARNING"):
        emb = load_embedder("random:RN50")
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)
    assert emb.encode_texts(["a cat"]).shape == (1, 1024)
    with pytest.raises(ModelError, match="not an open_clip architecture"):
        locate_embedder("random:NoSuchNet")


@pytest.mark.parametrize("source", ["local-dir:tests/assets/tiny_shapes_clip", "random:ViT-B-32"])
def test_trimmed_text_forward_is_exact(source):
    """Cutting the padding off a token batch changes no text feature (causal mask, EOT pooling)."""
    import torch

    from imagejury.models.clip import load_embedder

    emb = load_embedder(source)
    assert emb._can_trim
    texts = ["a red circle", "a photo of a blue square on a plain background", "word " * 120, "an orange cross"]
    tokens = emb.tokenizer(texts)
    with torch.inference_mode():
        full = emb.model.encode_text(tokens)
        trimmed = emb._encode_text_trimmed(tokens)
    assert torch.allclose(full, trimmed, atol=1e-5)
