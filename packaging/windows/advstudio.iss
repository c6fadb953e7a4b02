; Inno Setup 6 script: advstudio-VERSION-setup.exe from the PyInstaller one-folder bundle.
;
; Built by packaging/build.py on Windows, which passes the defines below:
;   iscc /DAppVersion=0.1.0 /DSourceDir=dist\advstudio /DOutputDir=dist
;        /DIconFile=resources\icons\advstudio.ico packaging\windows\advstudio.iss
; Installs per user by default (no administrator rights needed; the setup offers "for all
; users" too), adds a Start menu entry, an optional desktop icon and an uninstaller.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\advstudio"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#ifndef IconFile
  #define IconFile "..\..\resources\icons\advstudio.ico"
#endif

[Setup]
AppId={{6F1C5E2A-3B7D-4C8E-9A41-AD5D7E0C2B19}
AppName=advstudio
AppVersion={#AppVersion}
AppPublisher=advstudio
DefaultDirName={autopf}\advstudio
DefaultGroupName=advstudio
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=advstudio-{#AppVersion}-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\advstudio.exe
Compression=lzma2/fast
SolidCompression=no
LZMANumBlockThreads=4
WizardStyle=modern
; the CUDA build of PyTorch is larger than Inno Setup's 2 GB single-file limit: split it
DiskSpanning=yes
DiskSliceSize=max

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\advstudio"; Filename: "{app}\advstudio.exe"
Name: "{autodesktop}\advstudio"; Filename: "{app}\advstudio.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\advstudio.exe"; Description: "{cm:LaunchProgram,advstudio}"; Flags: nowait postinstall skipifsilent
