from canvasai.cli import main

raise SystemExit(main())
