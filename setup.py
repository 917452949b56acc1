"""rapidnet_mm: RapidNet (WACV 2025) for mmpretrain, mmdet and mmsegmentation."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def version() -> str:
    scope: dict = {}
    with open(osp.join(ROOT, 'rapidnet_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def ship_configs_and_tools() -> None:
    """Copy configs/, tools/, model-index.yml (what ``mim search`` reads) and docs/ (the
    metafiles' README links) into rapidnet_mm/.mim as OpenMMLab packages do.

    An editable install links them instead, so the installed package always sees the repository's
    files; a regular install (wheel) gets copies.
    """
    mim = osp.join(ROOT, 'rapidnet_mm', '.mim')
    for name in ('configs', 'tools', 'model-index.yml', 'docs'):
        src, dst = osp.join(ROOT, name), osp.join(mim, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        os.makedirs(mim, exist_ok=True)
        try:
            os.symlink(osp.relpath(src, mim), dst, target_is_directory=osp.isdir(src))
        except OSError:
            (shutil.copytree if osp.isdir(src) else shutil.copyfile)(src, dst)


if __name__ == '__main__':
    ship_configs_and_tools()
    setup(
        name='rapidnet_mm',
        version=version(),
        description='RapidNet (multi-level dilated convolution mobile backbone, WACV 2025) '
        'for mmpretrain, mmdet and mmsegmentation',
        long_description=open(osp.join(ROOT, 'README.md')).read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.9',
        packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
        include_package_data=True,
        package_data={'rapidnet_mm': ['.mim/configs/**/*.py', '.mim/configs/**/*.yml',
                                   '.mim/tools/**/*.py', '.mim/tools/**/*.sh',
                                   '.mim/model-index.yml', '.mim/docs/*.md']},
        # The ranges between the two tested stacks: requirements/stack.txt (torch 2.14.1,
        # numpy 2) and requirements/torch2.1.txt (torch 2.1.2, numpy 1.26; the `core` tests).
        install_requires=[
            'torch>=2.1',
            'torchvision>=0.16',
            'numpy>=1.26',
            'mmengine>=0.10,<0.11',
            'mmpretrain>=1.2,<1.3',
            'timm>=1.0,<2',
            # weights by Hub URL; tested with 2.4.0 (and 0.36.2's downloads and errors)
            'huggingface_hub>=0.36,<3',
        ],
        extras_require={
            'det': ['mmdet>=3.3,<3.4', 'mmcv>=2.1,<2.2', 'pycocotools'],
            'seg': ['mmsegmentation>=1.2,<1.3', 'mmcv>=2.1,<2.2', 'ftfy', 'regex'],
            # tested on the torch 2.14 stack only; --format coreml needs torch >= 2.2 (FP16 check
            # on CPU); openvino pinned: IR export and the benchmark runtime are tested with
            # 2026.4.1 only; nncf: OpenVINO's int8, tested with 3.4.0; executorch + torchao: the
            # .pte export and its int8, tested as this pair beside torch 2.14.1 (the exporter
            # refuses other versions with the pip line to run)
            'deploy': ['coremltools>=9.0', 'scikit-learn', 'onnx', 'onnxruntime',
                       'openvino==2026.4.1', 'nncf==3.4.0', 'executorch==1.5.1',
                       'torchao==0.18.0'],
        },
        zip_safe=False,
    )
