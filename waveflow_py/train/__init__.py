"""waveflow_py.train"""
