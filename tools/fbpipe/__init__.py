"""The end-to-end Free Bits pipeline behind ``tools/freebits.py`` (float → search → tables → free bits →
selection → fine-tuning → integer deployment → report)."""
