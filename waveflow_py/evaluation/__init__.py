"""waveflow_py.evaluation"""
