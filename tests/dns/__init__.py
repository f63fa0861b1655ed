"""Tests of DNS serving."""
