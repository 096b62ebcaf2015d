"""waveflow_py.models"""
