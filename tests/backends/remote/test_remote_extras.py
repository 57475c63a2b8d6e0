"""LoRAs, several control layers, reference images and regions on ComfyUI servers (issue 12).

Against the loopback protocol server (tests/support/fake_comfyui.py), which validates every
submitted graph as ComfyUI's execution.py does: each node type must exist in its
``/object_info``, required inputs must be present, and each link must point at an
existing node's output of the type the input takes. The tests then read the submitted
graph's structure: which nodes, in which chain, with which values.
"""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends.api import (
    ControlKind,
    ControlSettings,
    GenerationRequest,
    OutpaintSettings,
    ReferenceImage,
    ReferenceKind,
    RegionPrompt,
    Task,
)
from canvasai.backends.diffusion.control_maps import control_map
from canvasai.backends.loras import LoraSpec
from canvasai.backends.remote import catalog
from canvasai.backends.remote.protocol import ComfyClient, ServerConfig, ServerError, new_id
from canvasai.core.errors import GenerationError, ModelError
from tests.backends.remote.conftest import Ctx, backend_for
from tests.support.fake_comfyui import IPADAPTER_NODES

SD15 = "comfyui:checkpoints/sd15.safetensors"
SDXL = "comfyui:checkpoints/sdxl_base.safetensors"
FLUX = "comfyui:diffusion_models/flux1-dev.safetensors"

ADAPTER_MODELS = {
    "checkpoints": ["sd15.safetensors", "sdxl_base.safetensors"],
    "controlnet": ["control_v11p_sd15_scribble.safetensors"],
    "loras": [],
    "ipadapter": ["ip-adapter-faceid_sd15.bin", "ip-adapter_sdxl.safetensors",
                  "ip-adapter-plus_sd15.safetensors"],
    "clip_vision": ["CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors",
                    "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"],
}


def of_type(graph: dict, class_type: str) -> list[tuple[str, dict]]:
    """(node id, inputs) of every node of `class_type`, in node order."""
    return [(k, v["inputs"]) for k, v in sorted(graph.items(), key=lambda kv: int(kv[0]))
            if v["class_type"] == class_type]


def source(graph: dict, link: list) -> str:
    """The class of the node a link comes from."""
    return graph[link[0]]["class_type"]


def sketch(h: int = 64, w: int = 96) -> np.ndarray:
    img = np.full((h, w, 4), 255, np.uint8)
    img[20:24, 10:80, :3] = 0
    img[10:50, 40:44, :3] = 0
    return img


# ------------------------------------------------------------------------------ LoRAs


def test_two_loras_are_chained_in_order_with_their_weights(server):
    req = GenerationRequest(Task.TXT2IMG, prompt="a fox", model=SD15, seed=3, steps=2,
                            width=64, height=64,
                            loras=(LoraSpec("ink_style", 0.7), LoraSpec("paper_texture", -0.4)))
    result = backend_for(server).run(req, Ctx())
    g = server.prompts[0].graph
    (ck, _), = of_type(g, "CheckpointLoaderSimple")
    (a_id, a), (b_id, b) = of_type(g, "LoraLoader")
    assert a["lora_name"] == "ink_style.safetensors"
    assert a["strength_model"] == a["strength_clip"] == pytest.approx(0.7)
    assert b["lora_name"] == "sd15/paper_texture.safetensors"  # matched by name, in its subfolder
    assert b["strength_model"] == b["strength_clip"] == pytest.approx(-0.4)
    # the chain: checkpoint -> first LoRA -> second LoRA -> sampler and both text encoders
    assert a["model"] == [ck, 0] and a["clip"] == [ck, 1]
    assert b["model"] == [a_id, 0] and b["clip"] == [a_id, 1]
    (_, ks), = of_type(g, "KSampler")
    assert ks["model"] == [b_id, 0]
    assert all(enc["clip"] == [b_id, 1] for _, enc in of_type(g, "CLIPTextEncode"))
    assert result.metadata["loras"] == [
        {"name": "ink_style.safetensors", "weight": 0.7},
        {"name": "sd15/paper_texture.safetensors", "weight": -0.4},
    ]


def test_prompt_tags_become_loras_and_leave_the_prompt(server):
    req = GenerationRequest(Task.TXT2IMG, prompt="a fox <lora:ink_style:0.5>, in snow",
                            model=SD15, seed=3, steps=2, width=64, height=64)
    backend_for(server).run(req, Ctx())
    g = server.prompts[0].graph
    (_, lora), = of_type(g, "LoraLoader")
    assert lora["lora_name"] == "ink_style.safetensors" and lora["strength_model"] == 0.5
    texts = [enc["text"] for _, enc in of_type(g, "CLIPTextEncode")]
    assert "a fox, in snow" in texts and not any("<lora" in t for t in texts)


def test_a_lora_the_server_lacks_is_named_before_anything_is_sent(server):
    img, mask = sketch(), np.zeros((64, 96), np.uint8)
    mask[10:30, 10:30] = 255
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, prompt="p", model=SD15, seed=1,
                            steps=2, loras=(LoraSpec("ink_style", 1.0),
                                            LoraSpec("watercolour_v2", 0.8)))
    with pytest.raises(ModelError, match=r"has no LoRA watercolour_v2 \(ComfyUI models/loras"):
        backend_for(server).run(req, Ctx())
    assert server.prompts == [] and server.uploads == {}  # nothing queued, nothing uploaded


def test_a_lora_named_for_another_family_is_refused(make_server):
    srv = make_server(models={"checkpoints": ["sd15.safetensors"],
                              "loras": ["pixel_sdxl.safetensors"]})
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=32, height=32,
                            loras=(LoraSpec("pixel_sdxl"),))
    with pytest.raises(ModelError, match="pixel_sdxl.safetensors .* is for SDXL models"):
        backend_for(srv).run(req, Ctx())
    assert srv.prompts == []


def test_the_job_goes_to_the_server_that_has_the_lora(make_server):
    lacking = make_server(models={"checkpoints": ["sd15.safetensors"], "loras": []})
    having = make_server(models={"checkpoints": ["sd15.safetensors"],
                                 "loras": ["ink_style.safetensors"]})
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=32, height=32,
                            loras=(LoraSpec("ink_style", 0.6),))
    result = backend_for(lacking, having).run(req, Ctx())
    assert lacking.prompts == [] and len(having.prompts) == 1
    assert result.metadata["servers"] == [f"127.0.0.1:{having.port}"]


def test_loras_on_split_file_models_take_the_separate_text_encoders(server):
    srv_models = server.models
    srv_models["loras"] = ["flux_ink.safetensors"]
    req = GenerationRequest(Task.TXT2IMG, model=FLUX, seed=1, steps=2, width=64, height=64,
                            loras=(LoraSpec("flux_ink", 0.9),))
    backend_for(server).run(req, Ctx())
    g = server.prompts[0].graph
    (_, lora), = of_type(g, "LoraLoader")
    assert source(g, lora["model"]) == "UNETLoader" and source(g, lora["clip"]) == "DualCLIPLoader"


# ------------------------------------------------------------------------------ controls


def test_two_control_layers_are_chained_with_their_ranges(server):
    scribble = ControlSettings(ControlKind.SCRIBBLE, sketch(), scale=0.8, start=0.0, end=0.6)
    photo = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    canny = ControlSettings(ControlKind.CANNY, photo, scale=0.5, start=0.2, end=1.0)
    req = GenerationRequest(Task.SKETCH, prompt="a bridge", model=SD15, seed=9, steps=2,
                            controls=(scribble, canny))
    result = backend_for(server).run(req, Ctx())
    assert result.images[0].shape == (64, 96, 4)
    g = server.prompts[0].graph
    (first_id, first), (second_id, second) = of_type(g, "ControlNetApplyAdvanced")
    loaders = dict(of_type(g, "ControlNetLoader"))
    assert loaders[first["control_net"][0]]["control_net_name"] == "control_sd15_scribble.safetensors"
    assert loaders[second["control_net"][0]]["control_net_name"] == "control_sd15_canny.safetensors"
    assert (first["strength"], first["start_percent"], first["end_percent"]) == (0.8, 0.0, 0.6)
    assert (second["strength"], second["start_percent"], second["end_percent"]) == (0.5, 0.2, 1.0)
    # chained on both conditionings: prompts -> first -> second -> sampler
    assert source(g, first["positive"]) == source(g, first["negative"]) == "CLIPTextEncode"
    assert second["positive"] == [first_id, 0] and second["negative"] == [first_id, 1]
    (_, ks), = of_type(g, "KSampler")
    assert ks["positive"] == [second_id, 0] and ks["negative"] == [second_id, 1]
    # each layer's map was preprocessed here and uploaded at the work size
    for apply, c in ((first, scribble), (second, canny)):
        name = g[apply["image"][0]]["inputs"]["image"]
        uploaded = server.uploads[name][..., :3]
        expected, _ = control_map(c.kind, np.asarray(c.image), True)
        assert uploaded.shape == (64, 96, 3) and np.array_equal(uploaded, expected)
    assert [c["kind"] for c in result.metadata["controls"]] == ["scribble", "canny"]


def test_control_layers_apply_to_inpaint_cropped_to_its_region(server):
    img = np.random.default_rng(1).integers(0, 256, (128, 128, 4), dtype=np.uint8)
    img[..., 3] = 255
    mask = np.zeros((128, 128), np.uint8)
    mask[40:80, 40:80] = 255
    layer = ControlSettings(ControlKind.SCRIBBLE, sketch(128, 128), scale=0.7, start=0.1, end=0.9)
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, prompt="p", model=SD15, seed=1,
                            steps=2, controls=(layer,), native_resolution=False)
    result = backend_for(server).run(req, Ctx())
    g = server.prompts[0].graph
    (_, apply), = of_type(g, "ControlNetApplyAdvanced")
    assert apply["start_percent"] == 0.1 and apply["end_percent"] == 0.9
    (_, ks), = of_type(g, "KSampler")
    assert source(g, ks["positive"]) == "ControlNetApplyAdvanced"
    name = g[apply["image"][0]]["inputs"]["image"]
    ww, wh = result.metadata["work_size"]
    assert server.uploads[name].shape[:2] == (wh, ww)  # the region's part, at work size
    x, y, w, h = result.metadata["region"]
    full, _ = control_map(ControlKind.SCRIBBLE, sketch(128, 128), True)
    if (w, h) == (ww, wh):
        assert np.array_equal(server.uploads[name][..., :3], full[y:y + h, x:x + w])


def test_a_missing_controlnet_is_named_with_kind_and_family(server):
    layer = ControlSettings(ControlKind.DEPTH, sketch(), scale=0.5)
    req = GenerationRequest(Task.SKETCH, model=SDXL, seed=1, steps=2, controls=(layer,))
    with pytest.raises(ModelError, match="has no depth ControlNet for SDXL"):
        backend_for(server).run(req, Ctx())
    assert server.prompts == [] and server.uploads == {}


def test_an_sd15_controlnet_is_not_used_for_sdxl(make_server):
    srv = make_server(models={"checkpoints": ["sdxl_base.safetensors"],
                              "controlnet": ["control_v11p_sd15_canny.safetensors",
                                             "controlnet-canny-sdxl-1.0.safetensors"]})
    layer = ControlSettings(ControlKind.CANNY, sketch(), scale=0.5)
    req = GenerationRequest(Task.SKETCH, model=SDXL, seed=1, steps=2, controls=(layer,))
    backend_for(srv).run(req, Ctx())
    (_, loader), = of_type(srv.prompts[0].graph, "ControlNetLoader")
    assert loader["control_net_name"] == "controlnet-canny-sdxl-1.0.safetensors"


def test_pose_needs_a_ready_map_on_servers(make_server):
    srv = make_server(models={"checkpoints": ["sd15.safetensors"],
                              "controlnet": ["control_v11p_sd15_openpose.pth"]})
    figure = sketch()
    raw = ControlSettings(ControlKind.POSE, figure, scale=1.0)
    req = GenerationRequest(Task.SKETCH, model=SD15, seed=1, steps=2, controls=(raw,))
    with pytest.raises(GenerationError, match="Pose control needs a pose-estimation model"):
        backend_for(srv).run(req, Ctx())
    ready = ControlSettings(ControlKind.POSE, figure, scale=1.0, preprocess=False)
    req = GenerationRequest(Task.SKETCH, model=SD15, seed=1, steps=2, controls=(ready,))
    backend_for(srv).run(req, Ctx())
    (_, loader), = of_type(srv.prompts[0].graph, "ControlNetLoader")
    assert loader["control_net_name"] == "control_v11p_sd15_openpose.pth"
    assert srv.prompts[0].graph  # the ready map went up as it is


def test_control_maps_are_made_by_the_local_preprocessors_without_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from canvasai.backends.api import *\n"
            "from canvasai.backends.remote import extras\n"
            "img = np.full((32, 32, 3), 255, np.uint8); img[10:12] = 0\n"
            "layers = tuple(ControlSettings(k, img) for k in (ControlKind.CANNY, "
            "ControlKind.LINEART, ControlKind.SCRIBBLE, ControlKind.SOFTEDGE))\n"
            "req = GenerationRequest(Task.SKETCH, model='comfyui:checkpoints/a.safetensors', "
            "controls=layers)\n"
            "maps, notes = extras.control_maps(req)\n"
            "assert len(maps) == 4 and all(m.shape == (32, 32, 3) for m in maps)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_outpaint_places_the_control_map_in_the_grown_canvas(server):
    img = np.random.default_rng(3).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    img[..., 3] = 255
    white = np.full((64, 64, 3), 255, np.uint8)  # a map of the original picture's size
    layer = ControlSettings(ControlKind.SCRIBBLE, white, scale=0.5, preprocess=False)
    req = GenerationRequest(Task.OUTPAINT, image=img, model=SD15, seed=2, steps=2,
                            outpaint=OutpaintSettings(right=32), controls=(layer,),
                            native_resolution=False)
    result = backend_for(server).run(req, Ctx())
    assert result.images[0].shape == (64, 96, 4)
    g = server.prompts[0].graph
    (_, apply), = of_type(g, "ControlNetApplyAdvanced")
    cmap = server.uploads[g[apply["image"][0]]["inputs"]["image"]]
    x, y, w, h = result.metadata["region"]
    assert cmap.shape[:2] == (h, w)
    assert (cmap[:, : 64 - x, :3] == 255).all()  # the original's part: the map
    assert (cmap[:, 64 - x:, :3] == 0).all()  # the new margin: no control there


# ------------------------------------------------------------------------------ references


def test_references_without_the_ipadapter_nodes_say_what_to_install(server):
    ref = ReferenceImage(sketch(), strength=0.6)
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=64, height=64,
                            references=(ref,))
    with pytest.raises(ModelError, match="need the ComfyUI_IPAdapter_plus nodes"):
        backend_for(server).run(req, Ctx())
    assert server.prompts == [] and server.uploads == {}


def test_references_go_through_ipadapter_where_the_server_has_it(make_server):
    srv = make_server(models=dict(ADAPTER_MODELS), custom_nodes=IPADAPTER_NODES)
    refs = (ReferenceImage(sketch(600, 900), strength=0.6),
            ReferenceImage(sketch(), strength=0.9, kind=ReferenceKind.STYLE))
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=64, height=64,
                            references=refs)
    result = backend_for(srv).run(req, Ctx())
    g = srv.prompts[0].graph
    (a_id, a), (b_id, b) = of_type(g, "IPAdapterAdvanced")
    (loader_id, loader), = of_type(g, "IPAdapterModelLoader")  # shared by both
    (vision_id, vision), = of_type(g, "CLIPVisionLoader")
    assert loader["ipadapter_file"] == "ip-adapter-plus_sd15.safetensors"  # not FaceID, not SDXL
    assert vision["clip_name"] == "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    assert (a["weight"], a["weight_type"]) == (0.6, "linear")
    assert (b["weight"], b["weight_type"]) == (0.9, "style transfer")
    assert source(g, a["model"]) == "CheckpointLoaderSimple" and b["model"] == [a_id, 0]
    assert a["ipadapter"] == b["ipadapter"] == [loader_id, 0]
    assert a["clip_vision"] == [vision_id, 0]
    (_, ks), = of_type(g, "KSampler")
    assert ks["model"] == [b_id, 0]
    big = srv.uploads[g[a["image"][0]]["inputs"]["image"]]
    assert max(big.shape[:2]) == 512  # reduced before upload
    assert [r["strength"] for r in result.metadata["references"]] == [0.6, 0.9]


def test_sdxl_references_use_the_bigg_encoder(make_server):
    srv = make_server(models=dict(ADAPTER_MODELS), custom_nodes=IPADAPTER_NODES)
    req = GenerationRequest(Task.TXT2IMG, model=SDXL, seed=1, steps=2, width=64, height=64,
                            references=(ReferenceImage(sketch(), strength=0.5),))
    backend_for(srv).run(req, Ctx())
    g = srv.prompts[0].graph
    (_, loader), = of_type(g, "IPAdapterModelLoader")
    (_, vision), = of_type(g, "CLIPVisionLoader")
    assert loader["ipadapter_file"] == "ip-adapter_sdxl.safetensors"
    assert vision["clip_name"].startswith("CLIP-ViT-bigG")


def test_references_for_a_family_without_ipadapter_are_refused(server):
    req = GenerationRequest(Task.TXT2IMG, model=FLUX, seed=1, steps=2, width=64, height=64,
                            references=(ReferenceImage(sketch()),))
    with pytest.raises(ModelError, match="IP-Adapter, which works with SD 1.x and SDXL"):
        backend_for(server).run(req, Ctx())
    assert server.prompts == []


# ------------------------------------------------------------------------------ regions


def test_regions_are_refused_not_ignored(server):
    region = np.zeros((64, 64), np.uint8)
    region[:, :32] = 255
    req = GenerationRequest(Task.TXT2IMG, prompt="a street", model=SD15, seed=1, steps=2,
                            width=64, height=64, regions=(RegionPrompt("a red car", region),))
    with pytest.raises(ModelError, match="Regional prompts are not available on ComfyUI servers"):
        backend_for(server).run(req, Ctx())
    assert server.prompts == [] and server.uploads == {}


# ------------------------------------------------------------------------------ the fake itself


def test_the_protocol_server_refuses_malformed_graphs(server):
    client = ComfyClient(ServerConfig(server.url))
    base = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["1", 1]}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 8, "height": 8, "batch_size": 1}},
            "4": {"class_type": "KSampler", "inputs": {
                "model": ["1", 0], "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler",
                "scheduler": "normal", "positive": ["2", 0], "negative": ["2", 0],
                "latent_image": ["3", 0], "denoise": 1.0}},
            "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}}
    client.queue_prompt(base, new_id(), new_id())  # well-formed: accepted
    cases = [
        ({"4": {"model": ["1", 1]}}, "received_type\\(CLIP\\) mismatch input_type\\(MODEL\\)"),
        ({"4": {"positive": ["9", 0]}}, "Bad linked input"),
        ({"2": {"clip": ["1", 5]}}, "Bad linked input"),
        ({"5": {"vae": None}}, "Bad linked input"),
    ]
    for change, message in cases:
        graph = {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])}
                 for k, v in base.items()}
        for node, inputs in change.items():
            graph[node]["inputs"].update(inputs)
        with pytest.raises(ServerError, match=message):
            client.queue_prompt(graph, new_id(), new_id())
    missing = {k: v for k, v in base.items()}
    missing["4"] = {"class_type": "KSampler", "inputs": {
        k: v for k, v in base["4"]["inputs"].items() if k != "latent_image"}}
    with pytest.raises(ServerError, match="Required input is missing"):
        client.queue_prompt(missing, new_id(), new_id())
    with pytest.raises(ServerError, match="IPAdapterAdvanced' not found"):
        client.queue_prompt({**base, "7": {"class_type": "IPAdapterAdvanced", "inputs": {}}},
                            new_id(), new_id())
    client.close()


def test_the_listing_tells_which_custom_nodes_a_server_has(make_server):
    plain, packed = make_server(), make_server(models=dict(ADAPTER_MODELS),
                                               custom_nodes=IPADAPTER_NODES)
    for srv, nodes in ((plain, []), (packed, ["IPAdapterModelLoader", "IPAdapterAdvanced"])):
        client = ComfyClient(ServerConfig(srv.url))
        listing = client.models()
        client.close()
        assert listing["nodes"] == nodes
        assert listing["loras"] == list(srv.models.get("loras", []))
    assert len(listing["ipadapter"]) == 3 and len(listing["clip_vision"]) == 2


# ------------------------------------------------------------------------------ catalog


@pytest.mark.parametrize(
    ("files", "kind", "family", "expected"),
    [
        (["control_v11p_sd15_lineart.pth", "control_v11p_sd15_scribble.pth"], "lineart", "sd1",
         "control_v11p_sd15_lineart.pth"),
        (["control_v11p_sd15_softedge.pth"], "softedge", "sd1", "control_v11p_sd15_softedge.pth"),
        (["control_v11p_sd15_openpose.pth"], "pose", "sd1", "control_v11p_sd15_openpose.pth"),
        (["diffusers_xl_depth_full.safetensors", "control_depth_sd15.pth"], "depth", "sdxl",
         "diffusers_xl_depth_full.safetensors"),
        (["flux-canny-controlnet-v3.safetensors"], "canny", "flux",
         "flux-canny-controlnet-v3.safetensors"),
        (["flux-canny-controlnet-v3.safetensors"], "canny", "sd1", None),
        (["control_v11p_sd15_canny.pth"], "depth", "sd1", None),
    ],
)
def test_controlnets_are_matched_by_kind_and_family(files, kind, family, expected):
    assert catalog.pick_controlnet(files, kind, family) == expected


def test_lora_names_match_server_files():
    files = ["Ink Style.safetensors", "sd15/paper_texture.safetensors"]
    assert catalog.match_file(files, "ink style", "loras") == "Ink Style.safetensors"
    assert catalog.match_file(files, "/home/me/loras/paper_texture.safetensors", "loras") == \
        "sd15/paper_texture.safetensors"
    assert catalog.match_file(files, "comfyui:loras/sd15/paper_texture.safetensors", "loras") == \
        "sd15/paper_texture.safetensors"
    assert catalog.match_file(files, "comfyui:checkpoints/Ink Style.safetensors", "loras") is None
    assert catalog.match_file(files, "watercolour", "loras") is None
