"""Official sampling defaults and default negative prompts (`generate.py` `_validate_args`,
`wan/image2video.py` `WanI2V.generate`; `sample_neg_prompt` in `wan/configs/shared_config.py`,
`wan/configs/wan_i2v_14B.py` and `wan/configs/__init__.py`)."""

FPS = 16

NEGATIVE_PROMPT_T2V = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
NEGATIVE_PROMPT_I2V = "镜头晃动，" + NEGATIVE_PROMPT_T2V
NEGATIVE_PROMPT_FLF2V = "镜头切换，" + NEGATIVE_PROMPT_I2V

NEGATIVE_PROMPTS = {"t2v": NEGATIVE_PROMPT_T2V, "i2v": NEGATIVE_PROMPT_I2V, "flf2v": NEGATIVE_PROMPT_FLF2V}

# max_area presets of the official `--size` choices (only the area is used for I2V).
AREA_480P = 832 * 480
AREA_720P = 1280 * 720

# generate.py defaults for image-to-video: 40 steps, guidance 5, shift 3 at 480p and 5 at 720p.
I2V_STEPS = 40
I2V_GUIDANCE = 5.0
I2V_FRAMES = 81
I2V_SHIFT = {AREA_480P: 3.0, AREA_720P: 5.0}


def default_negative_prompt(model_type: str) -> str:
    """The official negative prompt used when the user leaves it empty."""
    return NEGATIVE_PROMPTS[model_type]


def default_shift(max_area: int) -> float:
    """Official shift for an area: 3.0 up to 480p, 5.0 above (generate.py `_validate_args`)."""
    return 3.0 if max_area <= AREA_480P else 5.0
