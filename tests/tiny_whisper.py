"""A tiny random Whisper model for the ASR tests, generated on disk (no hub); the `tiny_whisper` fixture
(conftest.py) writes one per session.

Its weights are set so that one word always wins: whatever the audio, it "hears" `RECOGNISED`.
"""

from __future__ import annotations

from pathlib import Path

WORD = "hello"
NEW_TOKENS = 3
RECOGNISED = " ".join([WORD] * NEW_TOKENS)  # what the tiny model hears in any audio


def write_tiny_whisper(out: Path, *, favoured: str | None = f"Ġ{WORD}", multilingual: bool = True) -> Path:
    """A random Whisper (d_model 16, one layer each side) whose decoder always predicts `favoured` (None: the end
    token, i.e. no speech): the final layer norm outputs a constant vector and only that token's (tied) embedding
    row is non-zero, so its logit is the only positive one."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        AddedToken,
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    # Byte-level BPE: every byte, plus merges spelling the favoured word (so it is one token).
    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    merges = []
    word = f"Ġ{WORD}"
    for i in range(2, len(word) + 1):
        merges.append((word[: i - 1], word[i - 1]))
        vocab.setdefault(word[:i], len(vocab))
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    # Whisper's special tokens in Whisper's order (languages right after <|startoftranscript|>).
    languages = [f"<|{code}|>" for code in LANGUAGES]
    specials = ["<|endoftext|>", "<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>"]
    specials += ["<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    tokenizer.add_tokens([AddedToken(s, special=True, normalized=False) for s in specials], special_tokens=True)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]

    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=8,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,  # 30 s of 10 ms frames, halved by the encoder's conv
        max_target_positions=32,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=start,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.model.decoder.layer_norm.weight.zero_()
        model.model.decoder.layer_norm.bias.fill_(1.0)
        embeddings = model.model.decoder.embed_tokens.weight  # tied to the output projection
        embeddings.zero_()
        embeddings[vocab[favoured] if favoured else end] = 1.0
    generation = GenerationConfig(
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        decoder_start_token_id=start,
        max_new_tokens=NEW_TOKENS,
        begin_suppress_tokens=[end] if favoured else [],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=multilingual,
    )
    if multilingual:
        generation.lang_to_id = {token: ids[token] for token in languages}
        generation.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    model.generation_config = generation
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=8).save_pretrained(out)
    return out
