"""waveflow_py.inference"""
