"""Quantization of SR networks: AdaBM's adaptive bit mapping (fake quantization) and a real int8 CPU path.

quantizer (asymmetric activations, symmetric weights, STE, calibration), bitmap (I2B, L2B), bac (bit-aware
clipping), adabm (the quantized model, FAB, BitOPs), finetune (L_pix + L_skt + L_bit), int8 (torch.ao); the
benchmark is adasr.benchmarks.quant.
"""
