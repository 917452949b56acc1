"""Small synthetic datasets written to disk in the layouts the libraries read (COCO, ADE20K,
ImageNet), for the demo, the tests, the GPU check and trying a config without downloading
anything."""
