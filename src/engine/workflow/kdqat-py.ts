// GENERATED from kdqat.py beside this file (the source to edit); test/recipe.test.ts checks they agree
// and rewrites this file when run with QUENCH_REGEN=1. A string so the studio (Vite) and Node (tsx)
// both ship it without a loader.
export const KDQAT_PY = String.raw`#!/usr/bin/env python3
# kdqat.py: Quench's KD-QAT recipe on PyTorch (1.13+), one process or many (torchrun: DDP by
# default, --fsdp to shard), CPU (gloo) or CUDA (nccl). Written by ${"`"}quench export-recipe${"`"}; it reads
# recipe.json (the run spec and the engine's resolved config), init.safetensors (the student's
# starting state), teacher/ (an HF LLaMA folder) and tokens.safetensors (the training stream and the
# held-out sequences, already tokenized), and reproduces Quench's run: the same group quantizer
# (codes, scales, zeros, ragged last group, round half to even, STE, LSQ with Quench's gradient
# scale), the same losses (KL with temperature, CE, attention-map KL, attention-output MSE,
# hidden-state MSE), the same freeze mask, AdamW with warm-up + cosine and global-norm clipping,
# gradient accumulation, and Quench's seeded sampling of training windows, bit for bit.
#
#   python3 kdqat.py --out DIR [--steps N] [--device cpu|cuda]
#   torchrun --nproc_per_node 8 kdqat.py --out DIR            (add --redirects 1 --tee 1 on torch 1.13 + Python 3.11)
#
# Writes DIR/metrics.jsonl (Quench's format: one JSON line per step), DIR/checkpoint.pt (resume
# with --resume), DIR/summary.json (held-out perplexity among it), DIR/student (a Quench quantized
# folder: ${"`"}quench eval --model DIR/student${"`"} loads it) and DIR/student-hf (the same student
# dequantized, plain HF LLaMA layout). The source of this file is src/engine/workflow/kdqat.py in Quench.
import argparse
import ctypes
import json
import math
import os
import shutil
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PROJECTIONS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down']
HF_NAMES = {'q': 'self_attn.q_proj', 'k': 'self_attn.k_proj', 'v': 'self_attn.v_proj', 'o': 'self_attn.o_proj',
            'gate': 'mlp.gate_proj', 'up': 'mlp.up_proj', 'down': 'mlp.down_proj'}
LOSS_SLOTS = ['kl', 'ce', 'attnMap', 'attnOut', 'hidden']
ATTN_KL_PROB_FLOOR = 1e-12
M32 = 0xFFFFFFFF

# ---------------------------------------------------------------- safetensors (no dependency)
_ST_DTYPES = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
              'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8,
              'BOOL': torch.bool, 'U32': torch.int32}  # U32 read as int32 bits (codes)
_ST_NAMES = {torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
             torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL'}


def read_safetensors(path):
    """{name: tensor}, metadata. Uses the ${"`"}safetensors${"`"} package when installed (not for U32)."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        meta = header.pop('__metadata__', None) or {}
        if not any(v['dtype'] == 'U32' for v in header.values()):
            try:
                from safetensors.torch import load_file  # optional
                return load_file(path), meta
            except ImportError:
                pass
        out = {}
        for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
            b, e = info['data_offsets']
            f.seek(8 + n + b)
            buf = bytearray(f.read(e - b))
            dt = _ST_DTYPES[info['dtype']]
            t = torch.frombuffer(buf, dtype=dt) if len(buf) else torch.empty(0, dtype=dt)
            out[name] = t.reshape(info['shape'])
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor, dtype name or None); 'U32' writes int32 bits as U32."""
    header, blobs, off = {}, [], 0
    for name, t, dname in tensors:
        t = t.detach().contiguous().cpu()
        nbytes = t.numel() * t.element_size()
        raw = ctypes.string_at(t.data_ptr(), nbytes) if nbytes else b''
        header[name] = {'dtype': dname or _ST_NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + nbytes]}
        blobs.append(raw)
        off += nbytes
    if metadata:
        header['__metadata__'] = metadata
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_hf_weights(folder):
    index = os.path.join(folder, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']
    out = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(folder, fn))[0])
    return {k: v.float() for k, v in out.items()}

# ---------------------------------------------------------------- Quench's data order


class Rng:
    """src/engine/train/data.ts Rng (mulberry32), the same 32-bit integer arithmetic."""

    def __init__(self, state):
        self.state = state & M32

    def next(self):
        self.state = (self.state + 0x6D2B79F5) & M32
        t = self.state
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0


def sample_starts(n_tokens, B, T, rng):
    """sampleBatch's window starts (B windows of T+1 tokens)."""
    return [int(math.floor(rng.next() * (n_tokens - T))) for _ in range(B)]


def lr_at(step, dc):
    if step < dc['warmup']:
        return dc['lr'] * (step + 1) / dc['warmup']
    t = (step - dc['warmup']) / max(1, dc['steps'] - dc['warmup'])
    return dc['lr'] * (dc['minLrRatio'] + (1 - dc['minLrRatio']) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

# ---------------------------------------------------------------- the group quantizer (src/engine/format/pack.ts)


def eff_group(group, K):
    return K if group <= 0 or group >= K else group


def expand_blocks(x, g, K):
    return x.repeat_interleave(g, dim=1)[:, :K]


def group_params(w, bits, g, sym, clip):
    """min/max (or absmax) per group times the clip ratio, in float32 as shaders/fakequant.wgsl."""
    N, K = w.shape
    nb = -(-K // g)
    wp = F.pad(w, (0, nb * g - K)).view(N, nb, g)  # zero padding: the range always holds 0 anyway
    qmax = 2 ** bits - 1
    c = torch.tensor(clip, dtype=torch.float32, device=w.device)
    if sym:
        half = 2 ** (bits - 1)
        amax = wp.abs().amax(-1) * c
        scale = torch.where(amax > 0, amax / (half - 1), torch.ones_like(amax))
        return scale, torch.full_like(scale, float(half))
    lo = wp.amin(-1).clamp(max=0) * c
    hi = wp.amax(-1).clamp(min=0) * c
    ok = (hi - lo) > 0
    scale = torch.where(ok, (hi - lo) / qmax, torch.ones_like(lo))
    zero = torch.where(ok, torch.round(-lo / scale).clamp(0, qmax), torch.zeros_like(lo))
    return scale, zero


def quant_codes(w, scales, zeros, bits, g):
    K = w.shape[1]
    return (torch.round(w / expand_blocks(scales, g, K)) + expand_blocks(zeros, g, K)).clamp(0, 2 ** bits - 1)


class FakeQuant(torch.autograd.Function):
    """dequant(quant(w)) with the STE (dw = dwq where round(w/s) + z lies in [0, qmax]) and, for
    learned scales, LSQ's step-size gradient with Quench's scale 1/sqrt(n_valid * max(qmax - z, 1))."""

    @staticmethod
    def forward(ctx, w, s, z, bits, g, learned):
        K = w.shape[1]
        qmax = 2 ** bits - 1
        sf, zf = expand_blocks(s, g, K), expand_blocks(z, g, K)
        v = w / sf
        r = torch.round(v)
        q = r + zf
        wq = (q.clamp(0, qmax) - zf) * sf
        mask = (q >= 0) & (q <= qmax)
        ctx.g, ctx.K, ctx.qmax, ctx.learned = g, K, qmax, learned
        if learned:
            qn, qp = -zf, qmax - zf
            d = torch.where(r < qn, qn, torch.where(r > qp, qp, r - v))
            ctx.save_for_backward(mask, d, s, z)
        else:
            ctx.save_for_backward(mask)
        return wq

    @staticmethod
    def backward(ctx, gout):
        if not ctx.learned:
            (mask,) = ctx.saved_tensors
            return gout * mask, None, None, None, None, None
        mask, d, s, z = ctx.saved_tensors
        N, nb = s.shape
        g, K = ctx.g, ctx.K
        acc = F.pad(gout * d, (0, nb * g - K)).view(N, nb, g).sum(-1)
        nvalid = torch.full((nb,), float(g), device=s.device)
        nvalid[-1] = float(K - (nb - 1) * g)
        ds = acc / torch.sqrt(nvalid[None, :] * torch.clamp(ctx.qmax - z, min=1.0))
        return gout * mask, ds, None, None, None, None


def pack_codes(codes, zeros, bits, g):
    """Quench's packed layout: cpw = floor(32/bits) codes per u32, low bits first; a ragged last
    group is padded with its zero point. Returns int32 (the U32 bits)."""
    N, K = codes.shape
    nb = zeros.shape[1]
    cpw = 32 // bits
    wpr = -(-(nb * g) // cpw)
    full = expand_blocks(zeros, g, nb * g).clone()
    full[:, :K] = codes
    c = torch.zeros(N, wpr * cpw, dtype=torch.int64, device=codes.device)
    c[:, :nb * g] = full.to(torch.int64)
    shifts = (torch.arange(cpw, device=codes.device, dtype=torch.int64) * bits)
    words = (c.view(N, wpr, cpw) << shifts).sum(-1)
    words = torch.where(words >= 2 ** 31, words - 2 ** 32, words)
    return words.to(torch.int32)

# ---------------------------------------------------------------- the model


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, HS, theta, device):
    i = torch.arange(HS // 2, dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] / torch.pow(torch.tensor(float(theta), dtype=torch.float64), 2 * i / HS)[None, :]
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def apply_rope(x, cos, sin):  # x (B, T, H, HS), HF rotate_half
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


class Proj(nn.Module):
    """One projection. mode: 'dense' (trainable fp32), 'fixed' (fp32, not trained: the teacher, a
    frozen fp-finetune projection), 'frozen' (quantized once, codes kept), 'minmax' (latent, scales
    from min/max every step), 'learned' (latent + LSQ step sizes; zero points fixed)."""

    def __init__(self, mode, w, q, scales=None, zeros=None, buffers=False):
        super().__init__()
        self.mode, self.N, self.K = mode, w.shape[0], w.shape[1]
        self.q = q
        self.g = eff_group(q['group'], self.K) if q else 0
        if mode == 'dense':
            self.w = nn.Parameter(w.clone())
        elif mode == 'fixed':
            if buffers:
                self.register_buffer('w', w.clone())
            else:
                self.w = nn.Parameter(w.clone(), requires_grad=False)
        elif mode == 'frozen':
            codes = quant_codes(w, scales, zeros, q['bits'], self.g)
            self.register_buffer('codes', codes.to(torch.uint8))
            self.register_buffer('scales', scales.clone())
            self.register_buffer('zeros', zeros.clone())
            self.register_buffer('wq', (codes - expand_blocks(zeros, self.g, self.K)) * expand_blocks(scales, self.g, self.K))
        elif mode == 'minmax':
            self.latent = nn.Parameter(w.clone())
        elif mode == 'learned':
            self.latent = nn.Parameter(w.clone())
            self.scales = nn.Parameter(scales.clone())
            self.register_buffer('zeros', zeros.clone())
        else:
            raise ValueError(mode)

    def current_qparams(self):
        """(scales, zeros) the forward uses now (no gradient)."""
        if self.mode == 'frozen':
            return self.scales, self.zeros
        if self.mode == 'learned':
            return self.scales.detach(), self.zeros
        return group_params(self.latent.detach(), self.q['bits'], self.g, self.q['sym'], self.q['clip'])

    def current_codes(self):
        if self.mode == 'frozen':
            return self.codes.float()
        s, z = self.current_qparams()
        return quant_codes(self.latent.detach(), s, z, self.q['bits'], self.g)

    def weight(self):
        if self.mode in ('dense', 'fixed'):
            return self.w
        if self.mode == 'frozen':
            return self.wq
        if self.mode == 'learned':
            return FakeQuant.apply(self.latent, self.scales, self.zeros, self.q['bits'], self.g, True)
        s, z = self.current_qparams()
        return FakeQuant.apply(self.latent, s, z, self.q['bits'], self.g, False)


class Layer(nn.Module):
    def __init__(self, projs, attn_norm, mlp_norm, train_norms, buffers):
        super().__init__()
        self.proj = nn.ModuleDict(projs)
        for name, w in (('attn_norm', attn_norm), ('mlp_norm', mlp_norm)):
            if train_norms:
                setattr(self, name, nn.Parameter(w.clone()))
            elif buffers:
                self.register_buffer(name, w.clone())
            else:
                setattr(self, name, nn.Parameter(w.clone(), requires_grad=False))


class Llama(nn.Module):
    """LLaMA as Quench computes it (src/engine/ref/llama.ts): RMSNorm, RoPE (rotate_half), causal
    GQA attention, SwiGLU; returns the logits and, per layer, the attention probabilities (when
    asked), the attention sub-layer output (Wo·att) and the residual stream after the layer."""

    def __init__(self, cfg, emb, lm_head, final_norm, layers, train_norms, buffers):
        super().__init__()
        self.cfg = cfg
        if buffers:
            self.register_buffer('emb', emb.clone())
            self.register_buffer('lm_head', lm_head.clone() if lm_head is not None else None)
        else:
            self.emb = nn.Parameter(emb.clone(), requires_grad=False)
            self.lm_head = nn.Parameter(lm_head.clone(), requires_grad=False) if lm_head is not None else None
        self.layers = nn.ModuleList(layers)
        if train_norms:
            self.final_norm = nn.Parameter(final_norm.clone())
        elif buffers:
            self.register_buffer('final_norm', final_norm.clone())
        else:
            self.final_norm = nn.Parameter(final_norm.clone(), requires_grad=False)
        self._rope = None

    def rope(self, T, device):
        if self._rope is None or self._rope[0].shape[0] < T or self._rope[0].device != device:
            self._rope = rope_tables(max(T, 64), head_size(self.cfg), self.cfg['ropeTheta'], device)
        return self._rope[0][:T], self._rope[1][:T]

    def forward(self, tokens, want_probs=False):
        cfg = self.cfg
        B, T = tokens.shape
        C, NH, NKV, eps = cfg['dim'], cfg['nHeads'], cfg['nKvHeads'], cfg['normEps']
        HS = head_size(cfg)
        cos, sin = self.rope(T, tokens.device)
        causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).triu(1)
        x = F.embedding(tokens, self.emb)
        xs, attn_outs, probs = [], [], []
        for L in self.layers:
            P = L.proj
            xn = rmsnorm(x, L.attn_norm, eps)
            q = apply_rope((xn @ P['q'].weight().t()).view(B, T, NH, HS), cos, sin).transpose(1, 2)
            k = apply_rope((xn @ P['k'].weight().t()).view(B, T, NKV, HS), cos, sin).transpose(1, 2)
            v = (xn @ P['v'].weight().t()).view(B, T, NKV, HS).transpose(1, 2)
            if NKV != NH:
                k = k.repeat_interleave(NH // NKV, dim=1)
                v = v.repeat_interleave(NH // NKV, dim=1)
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(HS))
            p = torch.softmax(s.masked_fill(causal, float('-inf')), dim=-1)
            att = (p @ v).transpose(1, 2).reshape(B, T, NH * HS)
            ao = att @ P['o'].weight().t()
            h = x + ao
            xn2 = rmsnorm(h, L.mlp_norm, eps)
            mo = (F.silu(xn2 @ P['gate'].weight().t()) * (xn2 @ P['up'].weight().t())) @ P['down'].weight().t()
            x = h + mo
            xs.append(x)
            attn_outs.append(ao)
            if want_probs:
                probs.append(p)
        head = self.lm_head if self.lm_head is not None else self.emb
        logits = rmsnorm(x, self.final_norm, eps) @ head.t()
        return logits, probs, attn_outs, xs


def head_size(cfg):
    # an explicit head size (head-pruned students of quench compress carry one): q/k/v/o are NH*HS wide
    return cfg.get('headDim') or cfg['dim'] // cfg['nHeads']


def hf_layer(w, l, p):
    return w['model.layers.%d.%s.weight' % (l, HF_NAMES[p])]


def build_teacher(cfg, w, buffers):
    layers = [Layer({p: Proj('fixed', hf_layer(w, l, p), None, buffers=buffers) for p in PROJECTIONS},
                    w['model.layers.%d.input_layernorm.weight' % l], w['model.layers.%d.post_attention_layernorm.weight' % l], False, buffers)
              for l in range(cfg['nLayers'])]
    return Llama(cfg, w['model.embed_tokens.weight'], w.get('lm_head.weight') if not cfg['tiedEmbeddings'] else None,
                 w['model.norm.weight'], layers, False, buffers)


def build_student(cfg, dc, w, init):
    """The student as Quench's Distiller builds it (src/engine/train/distill.ts): fp32 latents from
    the teacher (or init.safetensors), frozen projections quantized once with the init scales,
    learned scales from the init, min/max scales recomputed every step otherwise."""
    q = {'bits': dc['bits'], 'group': dc['group'], 'sym': dc['sym'], 'clip': dc['clip']}
    fp = dc['fpReference']
    layers = []
    for l in range(cfg['nLayers']):
        projs = {}
        for p in PROJECTIONS:
            frozen = dc['freeze'][l][p]
            wt = init.get('layers.%d.%s.latent' % (l, p), hf_layer(w, l, p)).float()
            if fp:
                projs[p] = Proj('fixed' if frozen else 'dense', wt, None, buffers=True)
                continue
            mode = 'frozen' if frozen else dc['scales']
            s = init.get('layers.%d.%s.scales' % (l, p))
            z = init.get('layers.%d.%s.zeros' % (l, p))
            if mode in ('frozen', 'learned') and (s is None or z is None):
                raise SystemExit('init.safetensors has no scales/zeros for layers.%d.%s (%s)' % (l, p, mode))
            projs[p] = Proj(mode, wt, q, s.float() if s is not None else None, z.float() if z is not None else None)
        norm = lambda k, hf: init.get('layers.%d.%s' % (l, k), w['model.layers.%d.%s.weight' % (l, hf)])
        layers.append(Layer(projs, norm('attnNorm', 'input_layernorm'), norm('mlpNorm', 'post_attention_layernorm'), dc['trainNorms'], True))
    return Llama(cfg, w['model.embed_tokens.weight'], w.get('lm_head.weight') if not cfg['tiedEmbeddings'] else None,
                 init.get('finalNorm', w['model.norm.weight']), layers, dc['trainNorms'], True)

# ---------------------------------------------------------------- losses (src/engine/ref/loss.ts), as sums over rows


def loss_sums(dc, so, to, tgt):
    """Per-slot sums over this rank's rows (kl, ce: rows B*T; attnMap: rows B*NH*T per layer;
    attnOut, hidden: rows B*T per layer, each row Σ d²/C). Zero-weight losses are not computed."""
    sl, sp, sa, sx = so
    tl, tp, ta, tx = to
    V = sl.shape[-1]
    out = {}
    W = dc['loss']
    if W['kl'] > 0:
        T_ = dc['temperature']
        lps = F.log_softmax(sl.reshape(-1, V) / T_, dim=-1)
        lpt = F.log_softmax(tl.reshape(-1, V) / T_, dim=-1)
        out['kl'] = (T_ * T_) * (lpt.exp() * (lpt - lps)).sum()
    if W['ce'] > 0:
        out['ce'] = F.cross_entropy(sl.reshape(-1, V), tgt.reshape(-1), reduction='sum')
    if W['attnMap'] > 0:
        tot = 0
        for ps, pt in zip(sp, tp):
            psf = ps + (ps.clamp_min(ATTN_KL_PROB_FLOOR) - ps).detach()  # floored value, gradient -pt/max(ps, floor) as Quench
            pos = pt > 0
            lpt = torch.log(torch.where(pos, pt, torch.ones_like(pt)))
            tot = tot + torch.where(pos, pt * (lpt - torch.log(psf)), torch.zeros_like(pt)).sum()
        out['attnMap'] = tot
    for key, s_, t_ in (('attnOut', sa, ta), ('hidden', sx, tx)):
        if W[key] > 0:
            C = s_[0].shape[-1]
            out[key] = sum(((a - b) ** 2).sum() for a, b in zip(s_, t_)) / C
    return out

# ---------------------------------------------------------------- distributed


class Dist:
    def __init__(self, device_kind):
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))
        self.on = self.world > 1
        if device_kind == 'cuda':
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device('cuda', self.local_rank)
        else:
            self.device = torch.device('cpu')
        if self.on:
            import torch.distributed as td
            td.init_process_group('nccl' if device_kind == 'cuda' else 'gloo')
            self.td = td

    def all_sum(self, values):
        """Sum a list of floats over ranks (float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.on:
            self.td.all_reduce(t)
        return t.tolist()

    def barrier(self):
        if self.on:
            self.td.barrier()

    def close(self):
        if self.on:
            self.td.destroy_process_group()

# ---------------------------------------------------------------- outputs


def student_bytes(cfg, st, quantized):
    C, H, V, L = cfg['dim'], cfg['hiddenDim'], cfg['vocabSize'], cfg['nLayers']
    total = (V * C * (1 if cfg['tiedEmbeddings'] else 2) + C * (2 * L + 1)) * 4
    for layer in st.layers:
        for p in PROJECTIONS:
            pr = layer.proj[p]
            if quantized:
                nb = -(-pr.K // pr.g)
                cpw = 32 // pr.q['bits']
                total += pr.N * (-(-(nb * pr.g) // cpw)) * 4 + pr.N * nb * 8
            else:
                total += pr.N * pr.K * 4
    return total


def hf_config(cfg, extra=None):
    c = {'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_size': cfg['dim'], 'intermediate_size': cfg['hiddenDim'],
         'num_hidden_layers': cfg['nLayers'], 'num_attention_heads': cfg['nHeads'], 'num_key_value_heads': cfg['nKvHeads'],
         'vocab_size': cfg['vocabSize'], 'max_position_embeddings': cfg['maxSeqLen'], 'rms_norm_eps': cfg['normEps'],
         'rope_theta': cfg['ropeTheta'], 'tie_word_embeddings': cfg['tiedEmbeddings'], 'hidden_act': 'silu',
         'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'float32'}
    if head_size(cfg) != cfg['dim'] // cfg['nHeads'] or cfg['dim'] % cfg['nHeads']:
        c['head_dim'] = head_size(cfg)
    c.update(extra or {})
    return c


def write_student(st, cfg, dc, recipe_dir, out_dir):
    """DIR/student: Quench's quantized folder (src/engine/io/hf.ts writeQuantizedHfModel: qweight
    U32, scales F32, zeros U8, the rest F32); DIR/student-hf: the same student dequantized."""
    os.makedirs(out_dir, exist_ok=True)
    hf_dir = out_dir + '-hf'
    os.makedirs(hf_dir, exist_ok=True)
    packed, plain = [], []
    emb = st.emb.detach().cpu()
    packed.append(('model.embed_tokens.weight', emb, 'F32'))
    plain.append(('model.embed_tokens.weight', emb, 'F32'))
    norm_names = {'attn_norm': 'input_layernorm', 'mlp_norm': 'post_attention_layernorm'}
    with torch.no_grad():
        for l, layer in enumerate(st.layers):
            order = [('attn_norm', None), ('q', 1), ('k', 1), ('v', 1), ('o', 1), ('mlp_norm', None), ('gate', 1), ('up', 1), ('down', 1)]
            for key, isproj in order:
                if not isproj:
                    t = getattr(layer, key).detach().cpu().float()
                    name = 'model.layers.%d.%s.weight' % (l, norm_names[key])
                    packed.append((name, t, 'F32'))
                    plain.append((name, t, 'F32'))
                    continue
                pr = layer.proj[key]
                base = 'model.layers.%d.%s' % (l, HF_NAMES[key])
                s, z = pr.current_qparams()
                codes = pr.current_codes()
                wq = ((codes - expand_blocks(z, pr.g, pr.K)) * expand_blocks(s, pr.g, pr.K)).cpu()
                packed.append((base + '.qweight', pack_codes(codes, z, pr.q['bits'], pr.g).cpu(), 'U32'))
                packed.append((base + '.scales', s.detach().cpu().float(), 'F32'))
                packed.append((base + '.zeros', z.detach().cpu().to(torch.uint8), 'U8'))
                plain.append((base + '.weight', wq, 'F32'))
        fn = st.final_norm.detach().cpu().float()
        packed.append(('model.norm.weight', fn, 'F32'))
        plain.append(('model.norm.weight', fn, 'F32'))
        if st.lm_head is not None:
            packed.append(('lm_head.weight', st.lm_head.detach().cpu(), 'F32'))
            plain.append(('lm_head.weight', st.lm_head.detach().cpu(), 'F32'))
    qc = {'quant_method': 'quench', 'bits': dc['bits'], 'group_size': dc['group'], 'sym': dc['sym'], 'clip_search': False,
          'modules': PROJECTIONS, 'format': 'see Quench src/engine/format/pack.ts (written by kdqat.py)'}
    write_safetensors(os.path.join(out_dir, 'model.safetensors'), packed, {'format': 'pt', 'quantizer': 'quench'})
    write_safetensors(os.path.join(hf_dir, 'model.safetensors'), plain, {'format': 'pt'})
    json.dump(hf_config(cfg, {'quantization_config': qc}), open(os.path.join(out_dir, 'config.json'), 'w'), indent=2)
    json.dump(hf_config(cfg), open(os.path.join(hf_dir, 'config.json'), 'w'), indent=2)
    tj = os.path.join(recipe_dir, 'teacher', 'tokenizer.json')
    if os.path.exists(tj):
        shutil.copy(tj, os.path.join(out_dir, 'tokenizer.json'))
        shutil.copy(tj, os.path.join(hf_dir, 'tokenizer.json'))


def eval_ppl(model, seqs, dist):
    """Quench's protocol (src/engine/workflow/data.ts): each sequence (BOS + tokens, truncated) in
    one forward; every token after BOS is predicted; ppl = exp(Σ NLL / predicted tokens). Rank r
    takes sequences r, r + world, ..."""
    nll, count = 0.0, 0
    with torch.no_grad():
        for i in range(dist.rank, len(seqs), dist.world):
            ids = seqs[i].to(dist.device)
            logits = model(ids[None, :-1])[0][0]
            lp = F.log_softmax(logits.float(), dim=-1).gather(1, ids[1:, None].long())[:, 0]
            nll -= lp.double().sum().item()
            count += ids.numel() - 1
    nll, count = dist.all_sum([nll, float(count)])
    return math.exp(nll / count) if count else float('nan'), nll, int(count)

# ---------------------------------------------------------------- the run


def main(argv=None):
    ap = argparse.ArgumentParser(description="Quench's KD-QAT recipe on PyTorch (one GPU or many with torchrun)")
    ap.add_argument('--out', required=True, help='output folder (metrics.jsonl, summary.json, student/, student-hf/, checkpoint.pt)')
    ap.add_argument('--recipe', default=os.path.dirname(os.path.abspath(__file__)), help='the recipe folder (default: beside this script)')
    ap.add_argument('--steps', type=int, help='override the number of steps (warm-up and metrics interval follow, as in Quench)')
    ap.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--fsdp', action='store_true', help='shard parameters, gradients and optimizer state over ranks (FullyShardedDataParallel)')
    ap.add_argument('--threads', type=int, help='CPU threads per process (torch.set_num_threads)')
    ap.add_argument('--checkpoint-every', type=int, default=100, help='steps between checkpoints (and always at the end)')
    ap.add_argument('--resume', action='store_true', help='continue from DIR/checkpoint.pt')
    ap.add_argument('--no-eval', action='store_true', help='skip the final held-out evaluation')
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dist = Dist(a.device)
    log = (lambda s: None) if (a.quiet or dist.rank != 0) else (lambda s: print(s, file=sys.stderr, flush=True))
    recipe = json.load(open(os.path.join(a.recipe, 'recipe.json')))
    cfg, spec, dc = recipe['config'], recipe['spec'], dict(recipe['distill'])
    if a.steps is not None:
        # as makeRunSpec({...spec, steps}) + resolveRunSpec: 'auto' warm-up and metrics interval follow the steps
        dc['steps'] = a.steps
        if spec['warmup'] == 'auto':
            dc['warmup'] = min(20, a.steps // 10)
        if spec['metricsEvery'] == 'auto':
            dc['metricsEvery'] = max(1, min(10, a.steps // 20))
    B, T, accum = dc['batch'], dc['seq'], dc['accum']
    if B < dist.world:
        raise SystemExit('batch %d is smaller than the number of processes %d: each rank needs at least one row' % (B, dist.world))
    lo, hi = dist.rank * B // dist.world, (dist.rank + 1) * B // dist.world
    tok, _ = read_safetensors(os.path.join(a.recipe, 'tokens.safetensors'))
    stream = tok['train'].to(torch.int64)
    offs = tok['eval_offsets'].tolist()
    evs = tok['eval_tokens'].to(torch.int64)
    eval_seqs = [evs[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)]
    tw = read_hf_weights(os.path.join(a.recipe, 'teacher'))
    init, _ = read_safetensors(os.path.join(a.recipe, 'init.safetensors'))
    teacher = build_teacher(cfg, tw, buffers=not a.fsdp).to(dist.device).eval()
    student = build_student(cfg, dc, tw, init).to(dist.device)
    del tw
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    scale_params = [p for n, p in named if n.endswith('.scales')]
    main_params = [p for n, p in named if not n.endswith('.scales')]
    want_probs = dc['loss']['attnMap'] > 0
    model = student
    if a.fsdp:
        if not dist.on:
            import torch.distributed as td
            os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
            os.environ.setdefault('MASTER_PORT', '29511')
            td.init_process_group('nccl' if a.device == 'cuda' else 'gloo', rank=0, world_size=1)
            dist.td, dist.on = td, True
        import functools
        try:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
            from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
        except (ImportError, ValueError) as e:  # torch 1.13's FSDP does not import on Python 3.11
            raise SystemExit('--fsdp: torch %s cannot import FSDP here (%s); use torch 2.x, or DDP (drop --fsdp)' % (torch.__version__, e))
        pol = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={Layer})
        kw = {'device_id': dist.device} if a.device == 'cuda' else {}
        model = FSDP(student, auto_wrap_policy=pol, **kw)
        teacher = FSDP(teacher, auto_wrap_policy=pol, **kw)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=dc['lr'], betas=(dc['beta1'], dc['beta2']), eps=1e-8, weight_decay=dc['weightDecay'])
        if scale_params and dc['scaleLrRatio'] != 1:
            log('note: with --fsdp the learned scales share the main learning rate (scaleLrRatio %g not applied)' % dc['scaleLrRatio'])
        groups = [(opt.param_groups[0], 1.0)]
    else:
        if dist.on:
            from torch.nn.parallel import DistributedDataParallel as DDP
            unused = dc['loss']['kl'] == 0 and dc['loss']['ce'] == 0
            model = DDP(student, device_ids=[dist.local_rank] if a.device == 'cuda' else None, broadcast_buffers=False, find_unused_parameters=unused)
        pg = [{'params': main_params, 'weight_decay': dc['weightDecay']}]
        if scale_params:
            pg.append({'params': scale_params, 'weight_decay': 0.0})
        opt = torch.optim.AdamW(pg, lr=dc['lr'], betas=(dc['beta1'], dc['beta2']), eps=1e-8)
        groups = [(opt.param_groups[0], 1.0)] + ([(opt.param_groups[1], dc['scaleLrRatio'])] if scale_params else [])
    rng = Rng(dc['seed'])
    step, history = 0, []
    os.makedirs(a.out, exist_ok=True)
    ckpt_path = os.path.join(a.out, 'checkpoint.pt')
    if a.resume:
        if a.fsdp:
            raise SystemExit('--resume is not supported with --fsdp here')
        ck = torch.load(ckpt_path, map_location=dist.device)
        student.load_state_dict(ck['student'])
        opt.load_state_dict(ck['optimizer'])
        step, rng.state, history = ck['step'], ck['rng_state'], ck['history']
        log('resumed at step %d' % step)
    if dist.rank == 0:
        with open(os.path.join(a.out, 'metrics.jsonl'), 'w') as f:
            for m in history:
                f.write(json.dumps(m) + '\n')
    # code flips need the unsharded latents: not reported under FSDP
    qat = [] if a.fsdp else [(l, p, layer.proj[p]) for l, layer in enumerate(student.layers) for p in PROJECTIONS if layer.proj[p].mode in ('minmax', 'learned')]
    initial_codes = {(l, p): pr.current_codes() for l, p, pr in qat}
    L, NH = cfg['nLayers'], cfg['nHeads']
    denom = [B * T, B * T, B * NH * T, B * T, B * T]
    world_scale = float(dist.world)  # DDP/FSDP average gradients over ranks; the losses are global means
    t_start = time.time()
    start_step = step
    while step < dc['steps']:
        t0 = time.time()
        opt.zero_grad(set_to_none=False)
        sums = [0.0] * 5
        last = None
        for micro in range(accum):
            starts = sample_starts(stream.numel(), B, T, rng)[lo:hi]
            win = torch.stack([stream[s:s + T + 1] for s in starts]).to(dist.device)
            inp, tgt = win[:, :-1], win[:, 1:]
            with torch.no_grad():
                to = teacher(inp, want_probs)
            sync = not (dist.on and not a.fsdp and micro < accum - 1)
            ctx = model.no_sync() if (dist.on and not sync) else _Null()
            with ctx:
                so = model(inp, want_probs)
                parts = loss_sums(dc, so, to, tgt)
                loss = sum(dc['loss'][k] * parts[k] / (denom[i] * accum) for i, k in enumerate(LOSS_SLOTS) if k in parts) * world_scale
                loss.backward()
            for i, k in enumerate(LOSS_SLOTS):
                if k in parts:
                    sums[i] += parts[k].item()
            last = (so, to)
        for p in (params if a.fsdp else main_params + scale_params):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        detailed = dc['metricsEvery'] > 0 and (step % dc['metricsEvery'] == 0 or step == dc['steps'] - 1)
        grad_sq = None
        if detailed and not a.fsdp:
            grad_sq = [{p: 0.0 for p in PROJECTIONS} for _ in range(L)]
            for l, layer in enumerate(student.layers):
                for p in PROJECTIONS:
                    pr = layer.proj[p]
                    t = pr.latent if pr.mode in ('minmax', 'learned') else (pr.w if pr.mode == 'dense' else None)
                    if t is not None and t.grad is not None:
                        grad_sq[l][p] = t.grad.double().pow(2).sum().item()
        max_norm = dc['gradClip'] if dc['gradClip'] > 0 and math.isfinite(dc['gradClip']) else float('inf')
        if a.fsdp:
            gnorm = float(model.clip_grad_norm_(max_norm))
        else:
            gnorm = float(torch.nn.utils.clip_grad_norm_(main_params + scale_params, max_norm))
        lr = lr_at(step, dc)
        for g, ratio in groups:
            g['lr'] = lr * ratio
        comp_codes = {}
        if detailed:
            for l, p, pr in qat:
                comp_codes[(l, p)] = pr.current_codes()  # the codes this step's forward used
        opt.step()
        tot = dist.all_sum(sums)
        comp = {k: tot[i] / denom[i] / accum for i, k in enumerate(LOSS_SLOTS)}
        loss_v = sum(dc['loss'][k] * comp[k] for k in LOSS_SLOTS)
        m = {'step': step, 'lr': lr, 'loss': loss_v, 'losses': comp, 'gradNorm': gnorm, 'tokensPerSec': B * T * accum / max(time.time() - t0, 1e-9)}
        if not math.isfinite(loss_v) or not math.isfinite(gnorm):
            raise SystemExit('step %d: the loss (%r) or the gradient norm (%r) is not finite; lower the learning rate' % (step, loss_v, gnorm))
        if detailed:
            (sl, sp, sa, sx), (tl, tp, ta, tx) = last
            vals = []
            for l in range(L):
                vals += [(sx[l] - tx[l]).double().pow(2).sum().item(), tx[l].double().pow(2).sum().item(),
                         (sa[l] - ta[l]).double().pow(2).sum().item(), ta[l].double().pow(2).sum().item()]
            vals = dist.all_sum(vals)
            m['hiddenRelErr'] = [vals[4 * l] / max(vals[4 * l + 1], 1e-30) for l in range(L)]
            m['attnOutRelErr'] = [vals[4 * l + 2] / max(vals[4 * l + 3], 1e-30) for l in range(L)]
            if grad_sq is not None:
                m['gradSq'] = grad_sq
            if qat:
                flips = {}
                for (l, p), c in comp_codes.items():
                    a0 = flips.get(p, [0, 0])
                    flips[p] = [a0[0] + int((c != initial_codes[(l, p)]).sum().item()), a0[1] + c.numel()]
                m['codeFlips'] = {p: c / n for p, (c, n) in flips.items()}
        history.append(m)
        step += 1
        if dist.rank == 0:
            with open(os.path.join(a.out, 'metrics.jsonl'), 'a') as f:
                f.write(json.dumps(m) + '\n')
        if step % 10 == 0 or step == dc['steps']:
            log('step %d/%d loss %.4f lr %.2e |g| %.3f %.0f tok/s' % (step, dc['steps'], loss_v, lr, gnorm, m['tokensPerSec']))
        if not a.fsdp and dist.rank == 0 and (step % a.checkpoint_every == 0 or step == dc['steps']):
            torch.save({'step': step, 'rng_state': rng.state, 'student': student.state_dict(), 'optimizer': opt.state_dict(), 'history': history}, ckpt_path + '.tmp')
            os.replace(ckpt_path + '.tmp', ckpt_path)
    wall = time.time() - t_start
    # the student as it ships: codes from the final latents; held-out perplexity on those weights
    ppl, nll, count = float('nan'), float('nan'), 0
    if a.fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        full = FSDP.summon_full_params(model, writeback=False)
    else:
        full = _Null()
    with full:
        if not a.no_eval:
            ppl, nll, count = eval_ppl(student, eval_seqs, dist)
        if dist.rank == 0 and not dc['fpReference']:
            write_student(student, cfg, dc, a.recipe, os.path.join(a.out, 'student'))
    if dist.rank == 0:
        lastm = history[-min(10, len(history)):] if history else []
        mean = lambda f: sum(f(x) for x in lastm) / max(1, len(lastm))
        run_steps = history[start_step:] if len(history) > start_step else history
        summary = {
            'label': recipe.get('label'), 'kind': spec['kind'], 'scheme': recipe.get('scheme', spec['scheme']), 'bits': spec['bits'], 'group': spec['group'],
            'steps': step, 'lr': spec['lr'], 'finalLoss': mean(lambda x: x['loss']), 'finalKl': mean(lambda x: x['losses']['kl']),
            'evalPpl': ppl, 'evalNll': nll, 'evalTokens': count, 'evalDocuments': len(eval_seqs), 'wallSeconds': round(wall, 2),
            'tokensPerSec': sum(x['tokensPerSec'] for x in run_steps) / max(1, len(run_steps)),
            'peakGpuBytes': torch.cuda.max_memory_allocated(dist.device) if a.device == 'cuda' else 0,
            'studentBytes': None if dc['fpReference'] else student_bytes(cfg, student, True),
            'spec': spec if a.steps is None else dict(spec, steps=a.steps), 'data': recipe.get('data'),
            'studentDir': None if dc['fpReference'] else os.path.join(a.out, 'student'),
            'engine': {'name': 'pytorch', 'torch': torch.__version__, 'device': a.device, 'world': dist.world, 'strategy': 'fsdp' if a.fsdp else ('ddp' if dist.on else 'single')},
        }
        json.dump(summary, open(os.path.join(a.out, 'summary.json'), 'w'), indent=2)
        log('held-out perplexity %.6f over %d tokens (%d sequences); student in %s' % (ppl, count, len(eval_seqs), summary['studentDir']))
        print(json.dumps({'evalPpl': ppl, 'evalTokens': count, 'steps': step, 'finalLoss': summary['finalLoss']}))
    dist.barrier()
    dist.close()
    return 0


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


if __name__ == '__main__':
    sys.exit(main())
`;
