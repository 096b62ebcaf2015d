"""waveflow_py.nn"""
