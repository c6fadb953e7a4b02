from advstudio.app import main

raise SystemExit(main())
