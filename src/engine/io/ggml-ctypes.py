#!/usr/bin/env python3
"""llama.cpp's own quantizer and ggml's own block codecs, called through ctypes on the shared
libraries inside node-llama-cpp (no build, no network). Used by src/engine/io/gguf-other.test.ts.

  ggml-ctypes.py LIBDIR quantize IN.gguf OUT.gguf FTYPE
      llama_model_quantize (what the llama-quantize tool runs): writes a GGUF of ftype FTYPE
      (llama_ftype number) from IN; prints the tensor types llama.cpp chose.
  ggml-ctypes.py LIBDIR codec TYPE N_PER_ROW ROWS IN.f32 OUT.blocks OUT.f32
      ggml_quantize_chunk of IN (ROWS x N_PER_ROW float32) to ggml type TYPE, then that type's
      to_float (dequantize_row_*): writes the blocks and ggml's dequantized float32 values.
"""
import ctypes as C
import os
import sys


class QuantizeParams(C.Structure):
    # include/llama.h, struct llama_model_quantize_params (llama.cpp as bundled by node-llama-cpp 3.21.1)
    _fields_ = [
        ("nthread", C.c_int32), ("ftype", C.c_int32), ("output_tensor_type", C.c_int32), ("token_embedding_type", C.c_int32),
        ("allow_requantize", C.c_bool), ("quantize_output_tensor", C.c_bool), ("only_copy", C.c_bool), ("pure", C.c_bool),
        ("keep_split", C.c_bool), ("dry_run", C.c_bool),
        ("imatrix", C.c_void_p), ("kv_overrides", C.c_void_p), ("tt_overrides", C.c_void_p), ("prune_layers", C.c_void_p),
        ("max_buf_size", C.c_size_t),
    ]


class TypeTraits(C.Structure):
    # ggml/include/ggml.h, struct ggml_type_traits
    _fields_ = [
        ("type_name", C.c_char_p), ("blck_size", C.c_int64), ("blck_size_interleave", C.c_int64), ("type_size", C.c_size_t),
        ("is_quantized", C.c_bool), ("to_float", C.c_void_p), ("from_float_ref", C.c_void_p),
    ]


def main():
    libdir, cmd = sys.argv[1], sys.argv[2]
    base = C.CDLL(os.path.join(libdir, "libggml-base.so"), mode=C.RTLD_GLOBAL)
    if cmd == "quantize":
        C.CDLL(os.path.join(libdir, "libggml.v0.4.0.so"), mode=C.RTLD_GLOBAL)
        llama = C.CDLL(os.path.join(libdir, "libllama.v0.4.0.so"), mode=C.RTLD_GLOBAL)
        llama.llama_model_quantize_default_params.restype = QuantizeParams
        llama.llama_model_quantize.argtypes = [C.c_char_p, C.c_char_p, C.POINTER(QuantizeParams)]
        llama.llama_model_quantize.restype = C.c_uint32
        llama.llama_backend_init()
        p = llama.llama_model_quantize_default_params()
        p.nthread = 1
        p.ftype = int(sys.argv[5])
        rc = llama.llama_model_quantize(sys.argv[3].encode(), sys.argv[4].encode(), C.byref(p))
        if rc != 0:
            sys.exit(f"llama_model_quantize failed ({rc})")
        return
    if cmd == "codec":
        t, n, rows = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        src = open(sys.argv[6], "rb").read()
        assert len(src) == 4 * n * rows, "input size"
        base.ggml_get_type_traits.restype = C.POINTER(TypeTraits)
        base.ggml_get_type_traits.argtypes = [C.c_int]
        tr = base.ggml_get_type_traits(t).contents
        base.ggml_quantize_chunk.restype = C.c_size_t
        base.ggml_quantize_chunk.argtypes = [C.c_int, C.c_void_p, C.c_void_p, C.c_int64, C.c_int64, C.c_int64, C.c_void_p]
        row_bytes = n // tr.blck_size * tr.type_size
        x = (C.c_char * len(src)).from_buffer_copy(src)
        q = (C.c_char * (row_bytes * rows))()
        wrote = base.ggml_quantize_chunk(t, x, q, 0, rows, n, None)
        assert wrote == row_bytes * rows, f"ggml_quantize_chunk wrote {wrote}"
        out = (C.c_float * (n * rows))()
        C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)(tr.to_float)(q, out, n * rows)
        open(sys.argv[7], "wb").write(bytes(q))
        open(sys.argv[8], "wb").write(bytes(out))
        print(tr.type_name.decode(), tr.blck_size, tr.type_size)
        return
    sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
