from glyphfuse.cli import main

main()
