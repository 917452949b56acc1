"""Small synthetic datasets written to disk in the layouts the libraries read (COCO, ADE20K), for
the demo, the tests and trying a config without downloading anything."""
